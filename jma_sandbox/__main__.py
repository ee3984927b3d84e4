"""``python -m jma_sandbox [--host H] [--port P] [--publish NAME ...]``: serve the JMA feed
sandbox until Ctrl-C or SIGTERM (runstack starts it in the embedded default)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import JmaSandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jma_sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--publish", action="append", default=[], help="publish at start")
    args = parser.parse_args(argv)
    try:
        sandbox = JmaSandbox(args.host, args.port).start()
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    for name in args.publish:
        sandbox.state.publish(name)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"JMA feed sandbox on {sandbox.url}/ (Ctrl-C to stop)", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
