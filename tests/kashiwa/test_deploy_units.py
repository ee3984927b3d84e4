"""The systemd units shipped in deploy/systemd/ match the Procfile and restart whatever
happens (issue 12 finding 4: a worker that exits after a Redis blip must come back without a
person)."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "deploy" / "systemd"
LONG_RUNNING = {
    "web": "kashiwa-web",
    "worker": "kashiwa-worker",
    "emergency": "kashiwa-emergency",
    "beat": "kashiwa-beat",
}


def procfile() -> dict[str, str]:
    entries = {}
    for line in (REPO / "Procfile").read_text().splitlines():
        if line and not line.startswith("#"):
            name, command = line.split(":", 1)
            entries[name.strip()] = command.strip()
    return entries


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive in systemd
    parser.read(UNITS / f"{name}.service")
    return parser


def test_every_procfile_process_has_a_unit():
    assert set(procfile()) == {"release", *LONG_RUNNING}
    for name in LONG_RUNNING.values():
        assert (UNITS / f"{name}.service").exists(), name
    assert (UNITS / "kashiwa-release.service").exists()


@pytest.mark.parametrize("process", sorted(LONG_RUNNING))
def test_long_running_units_always_restart_and_never_give_up(process):
    parsed = unit(LONG_RUNNING[process])
    assert parsed["Service"]["Restart"] == "always"
    assert float(parsed["Service"]["RestartSec"]) <= 5
    assert parsed["Unit"]["StartLimitIntervalSec"] == "0"
    assert "kashiwa-release.service" in parsed["Unit"]["After"]


def niceness(args: list[str]) -> tuple[int, list[str]]:
    """(niceness, the command) of a Procfile command that may start with ``nice -n N``."""
    if args[:2] == ["nice", "-n"]:
        return int(args[2]), args[3:]
    return 0, args


def unit_niceness(process: str) -> int:
    return int(unit(LONG_RUNNING[process])["Service"].get("Nice", "0"))


@pytest.mark.parametrize("process", sorted(LONG_RUNNING))
def test_units_run_at_the_procfile_niceness(process):
    nice, _command = niceness(shlex.split(procfile()[process]))
    assert unit_niceness(process) == nice


def test_the_bulk_worker_yields_the_cpu_to_the_emergency_worker_and_the_web():
    """Issue 18: during a 100,000-recipient multicast on the default worker, the emergency
    worker (and the web, where the supervisor approves) must get the CPU first — on the
    Procfile's platform and under systemd alike."""
    procs = {name: shlex.split(command) for name, command in procfile().items()}
    worker_nice, worker = niceness(procs["worker"])
    assert worker_nice == 10 and worker[worker.index("-Q") + 1] == "default"
    for process in ("emergency", "web", "beat"):
        nice, _command = niceness(procs[process])
        assert nice < worker_nice, process
        assert unit_niceness(process) < unit_niceness("worker"), process
    assert unit_niceness("worker") == 10


@pytest.mark.parametrize("process", ["worker", "emergency", "beat"])
def test_units_run_what_the_procfile_runs(process):
    _nice, expected = niceness(shlex.split(procfile()[process]))
    actual = shlex.split(unit(LONG_RUNNING[process])["Service"]["ExecStart"].replace("%%", "%"))
    assert Path(actual[0]).name == expected[0]

    # Same sub-command and queues/concurrency (paths of state files differ by design).
    def flags(args: list[str]) -> list[str]:
        out, skip = [], False
        for arg in args[1:]:
            if skip:
                skip = False
                continue
            if arg == "-s":
                skip = True
                continue
            out.append(arg)
        return out

    assert flags(actual) == flags(expected)
