"""Kill a real command at a chosen moment, then check what it left behind.

    killed = kill_when(mlstack("train", "--trials", "40"), env, when=output_has("trial 1/"))
    assert killed.survivors() == []          # no child service outlived it
    ... then read the data dir, the registry, the tables: the invariants of the story under test.

The moment is a predicate polled every 50 ms (a file appeared, a line was printed, a row was
written) or a number of seconds. The command runs as a plain child of the test, not in a new
session, and only its own pid gets the SIGKILL: what happens to its children is what is tested.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

POLL_S = 0.05


def mlstack(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlstack.cli", *args]


# The local Prefect API a command starts stops itself after this long unused: long enough for
# a test's next command to find it, short enough that a killed command's API is gone within
# `Killed.survivors`' grace.
API_IDLE_S = "5"


def command_env(home: Path, **extra: str) -> dict[str, str]:
    """The test session's environment with its own data dir, and no Prefect API configured: the
    first command starts the data dir's local one and the next reuse it, as a user's would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["MLSTACK_ORCHESTRATION_API_IDLE_S"] = API_IDLE_S
    # Commands run cold here; tests/mlstack/deploy/test_warm.py runs them warm.
    env.setdefault("MLSTACK_ORCHESTRATION_WARM", "false")
    return {**env, "MLSTACK_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200", **extra}


@dataclass
class Killed:
    pid: int
    tree: list[psutil.Process]  # its descendants at the moment of the kill
    commands: dict[int, str]  # and their command lines, read before the kill
    log: Path
    after_s: float

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def survivors(self, grace_s: float = 15.0) -> list[str]:
        """Descendants still running after `grace_s`: each as `pid command`."""
        deadline = time.monotonic() + grace_s
        alive = list(self.tree)
        while alive and time.monotonic() < deadline:
            alive = [p for p in alive if _running(p)]
            time.sleep(0.2)
        return [f"{p.pid} {self.commands[p.pid][:160]}" for p in alive if _running(p)]

    def started(self, fragment: str) -> list[int]:
        """The descendants whose command line holds `fragment`."""
        return [pid for pid, command in self.commands.items() if fragment in command]


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def alive(pid: int) -> bool:
    """Whether `pid` runs, a zombie counting as gone."""
    try:
        return _running(psutil.Process(pid))
    except psutil.Error:
        return False


def kill_when(
    argv: list[str],
    env: dict[str, str],
    when: Callable[[], bool] | float,
    log: Path | None = None,
    timeout_s: float = 300.0,
) -> Killed:
    """Run argv; SIGKILL it once `when()` holds (or after `when` seconds). Fails the test if the
    command ends first: then the kill point was never reached, and nothing was tested."""
    log = log or Path(env["MLSTACK_HOME"]) / f"killed-{time.monotonic_ns()}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    ready = (lambda: time.monotonic() - started >= when) if isinstance(when, int | float) else when
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    started = time.monotonic()
    try:
        while not ready():
            if process.poll() is not None:
                raise AssertionError(
                    f"{' '.join(argv[2:])} ended (code {process.returncode}) before the kill point:\n"
                    + log.read_text(errors="replace")[-3000:]
                )
            if time.monotonic() - started > timeout_s:
                raise AssertionError(f"the kill point was not reached in {timeout_s:g} s")
            time.sleep(POLL_S)
        tree = psutil.Process(process.pid).children(recursive=True)
        commands = {p.pid: _command(p) for p in tree}
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return Killed(process.pid, tree, commands, log, time.monotonic() - started)


def _command(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return "(gone)"


def output_has(log: Path, text: str) -> Callable[[], bool]:
    return lambda: log.is_file() and text in log.read_text(errors="replace")


def run(argv: list[str], env: dict[str, str], timeout_s: float = 600.0) -> subprocess.CompletedProcess[str]:
    """Run to the end; stdout and stderr apart, so a test can tell what went where."""
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s)


def start_together(argvs: list[list[str]], env: dict[str, str]) -> list[subprocess.CompletedProcess[str]]:
    """Start every command at once and wait for all: the race a scheduler makes every day."""
    processes = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for argv in argvs
    ]
    results = []
    for argv, process in zip(argvs, processes, strict=True):
        stdout, stderr = process.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(argv, process.returncode, stdout, stderr))
    return results
