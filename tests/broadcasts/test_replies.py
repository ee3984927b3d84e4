"""ReplyPool: replies in parallel, never after the token's lifetime, retried while it lasts.

A stand-in gateway and clock: these are about what is attempted and when, which the sandbox
cannot slow down or age on demand (tests/broadcasts/test_webhook.py has the end-to-end
cases against the sandbox)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from broadcasts.line.errors import LinePermanentError, LineTemporaryError
from broadcasts.services import replies

T0 = dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC)
GREETING = [{"type": "text", "text": "友だち追加ありがとうございます"}]


class Clock:
    def __init__(self) -> None:
        self.now = T0
        self.lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += dt.timedelta(seconds=seconds)


class Gateway:
    """Answers each token from a script of outcomes (an exception or None = accepted)."""

    def __init__(self, script=None, on_call=None) -> None:
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.on_call = on_call
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def reply(self, *, reply_token: str, messages) -> str:
        with self.lock:
            self.calls.append(reply_token)
            outcomes = self.script.get(reply_token) or [None]
            outcome = outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]
        if self.on_call:
            self.on_call(reply_token)
        if outcome is not None:
            raise outcome
        return "request-id"


@pytest.fixture(autouse=True)
def lifetime(settings):
    settings.REPLY_TOKEN_MAX_AGE_SECONDS = 50


def run(gateway, clock, jobs, concurrency=4):
    with replies.ReplyPool(
        gateway=gateway, now_fn=clock, sleep=clock.sleep, concurrency=concurrency
    ) as pool:
        for key, event_at in jobs:
            pool.submit(key, token=key, messages=GREETING, event_at=event_at)
        return dict(pool.drain())


def test_an_old_event_is_not_attempted():
    clock, gateway = Clock(), Gateway()
    clock.now = T0 + dt.timedelta(seconds=50)
    outcome = run(gateway, clock, [("old", T0), ("new", T0 + dt.timedelta(seconds=40))])
    assert gateway.calls == ["new"]
    assert outcome["new"] == ""
    assert outcome["old"].startswith(replies.EXPIRED) and "50 秒" in outcome["old"]


def test_a_token_that_expires_while_waiting_for_a_thread_is_not_attempted():
    """One thread; the first call takes LINE 45 s: the second event, 10 s old when it was
    submitted, is past its lifetime when a thread is free."""
    clock = Clock()
    gateway = Gateway(on_call=lambda token: clock.sleep(45) if token == "slow" else None)
    clock.now = T0 + dt.timedelta(seconds=10)
    outcome = run(gateway, clock, [("slow", T0 + dt.timedelta(seconds=10)), ("next", T0)], 1)
    assert gateway.calls == ["slow"]
    assert outcome["slow"] == ""
    assert outcome["next"].startswith(replies.EXPIRED)


def test_temporary_failures_are_retried_within_the_lifetime():
    clock = Clock()
    busy = LineTemporaryError("Internal server error", status=500)
    gateway = Gateway({"a": [busy, busy, None]})
    assert run(gateway, clock, [("a", T0)]) == {"a": ""}
    assert gateway.calls == ["a", "a", "a"]
    assert clock.now == T0 + dt.timedelta(seconds=1.5)  # waited 0.5 s, then 1 s


def test_retries_stop_before_the_token_runs_out():
    clock = Clock()
    gateway = Gateway({"a": [LineTemporaryError("Service unavailable", status=503)]})
    outcome = run(gateway, clock, [("a", T0 + dt.timedelta(seconds=-30))])
    # 30 s old: attempts at 30, 30.5, 31.5, 33.5, 37.5, 45.5 s; the next would be at 53.5 s
    assert len(gateway.calls) == 6
    assert "503" in outcome["a"] and "6 回試行" in outcome["a"]
    assert clock.now < T0 + dt.timedelta(seconds=20)


def test_a_refusal_after_a_timeout_is_recorded_as_maybe_delivered():
    """LINE accepts a token once: a retry after an attempt that did reach LINE is refused,
    never delivered twice. The record says the first may have arrived."""
    clock = Clock()
    gateway = Gateway(
        {
            "a": [
                LineTemporaryError("LINE に接続できません: ReadTimeoutError"),
                LinePermanentError("Invalid reply token", status=400),
            ]
        }
    )
    outcome = run(gateway, clock, [("a", T0)])
    assert gateway.calls == ["a", "a"]
    assert "Invalid reply token" in outcome["a"] and "届いた可能性" in outcome["a"]


def test_a_refusal_is_not_retried():
    clock = Clock()
    gateway = Gateway({"a": [LinePermanentError("Invalid reply token", status=400)]})
    assert "400" in run(gateway, clock, [("a", T0)])["a"]
    assert gateway.calls == ["a"]


def test_an_unexpected_error_is_recorded_not_lost():
    clock = Clock()
    gateway = Gateway({"a": [RuntimeError("bug")]})
    outcome = run(gateway, clock, [("a", T0), ("b", T0)])
    assert outcome == {"a": "RuntimeError: bug", "b": ""}


def test_calls_run_in_parallel_up_to_the_concurrency():
    clock = Clock()
    lock, state = threading.Lock(), {"now": 0, "most": 0}
    release = threading.Event()

    def on_call(token):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
            if state["most"] == 3:
                release.set()
        release.wait(5)
        with lock:
            state["now"] -= 1

    outcome = run(Gateway(on_call=on_call), clock, [(f"t{i}", T0) for i in range(9)], 3)
    assert state["most"] == 3
    assert set(outcome.values()) == {""}


def test_finished_below_waits_until_fewer_are_in_flight():
    clock, gate = Clock(), threading.Event()
    gateway = Gateway(on_call=lambda token: gate.wait(5) if token != "t0" else None)
    with replies.ReplyPool(gateway=gateway, now_fn=clock, sleep=clock.sleep, concurrency=2) as pool:
        for i in range(3):
            pool.submit(f"t{i}", token=f"t{i}", messages=GREETING, event_at=T0)
        done = pool.finished(below=3)  # t0 answers at once, t1 and t2 wait for the gate
        assert [key for key, _ in done] == ["t0"] and pool.in_flight == 2
        gate.set()
        assert sorted(key for key, _ in pool.drain()) == ["t1", "t2"]
