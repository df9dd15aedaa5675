"""The warm process (mlstack/cli/warm.py), through real `mlstack` processes: a flow command
finds it and runs in a child forked from it, on the caller's own output and exit code; and what is
left when the caller is killed, when it idles, and after `mlstack down`."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from mlstack.cli import warm
from tests.kill import alive, command_env, mlstack, output_has, run


def warm_env(home: Path, **extra: str) -> dict[str, str]:
    return command_env(home, MLSTACK_ORCHESTRATION_WARM="true", **extra)


def fingerprint_of(env: dict[str, str]) -> str:
    """The fingerprint a command started from this test, with `env`, has (same directory and
    interpreter)."""
    return warm.fingerprint(env, os.getcwd())


def wait_for(predicate: Callable[[], bool], timeout_s: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def warm_log(home: Path) -> str:
    path = home / "stack" / "warm.log"
    return path.read_text() if path.is_file() else ""


def served_pid(home: Path, command: str) -> int | None:
    """The pid of the child that ran `mlstack COMMAND` warm, from the warm process's log."""
    for line in warm_log(home).splitlines():
        if line.endswith(f": mlstack {command}") and line.startswith("pid "):
            return int(line.split()[1].rstrip(":"))
    return None


def warm_records(home: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((home / "stack").glob("warm-*.json"))]


# Without a process: what decides where a command runs.


def test_the_fingerprint_is_what_settings_are_made_of(tmp_path: Path) -> None:
    env = {"MLSTACK_HOME": "/a", "PATH": "/bin"}
    here = str(tmp_path)
    first = warm.fingerprint(env, here)
    assert warm.fingerprint({**env, "PWD": "/x", "SHLVL": "3", "COLUMNS": "80"}, here) == first
    assert warm.fingerprint({**env, "MLSTACK_DATA_MAX_BAD_ROW_SHARE": "0.1"}, here) != first
    assert warm.fingerprint(env, str(tmp_path / "elsewhere")) != first
    (tmp_path / ".env").write_text("MLSTACK_HOME=/b\n")  # the .env the command would read
    changed = warm.fingerprint(env, here)
    assert changed != first
    (tmp_path / ".env").write_text("MLSTACK_HOME=/c\n")
    assert warm.fingerprint(env, here) not in (first, changed)


def _leaves(command, path=()):
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _leaves(sub, (*path, name))
    else:
        yield path, command


def test_every_flow_command_and_nothing_else_is_run_warm() -> None:
    """A command runs warm exactly when it runs a flow; the module named is the one it imports."""
    import importlib
    import inspect

    flow_commands = 0
    for path, command in _leaves(warm._root_command()):
        source = inspect.getsource(inspect.unwrap(command.callback))
        module = warm.flow_module([*path, "--json"])
        if "run_flow(" in source:
            flow_commands += 1
            assert module is not None, path
            assert f"from {module} import" in source
            assert importlib.util.find_spec(module) is not None
            assert warm.flow_module([*path, "--help"]) is None, "help runs no flow"
        else:
            assert module is None, path
    assert flow_commands >= 15
    assert warm.flow_module(["nope"]) is None
    assert warm.flow_module(["data"]) is None, "a group alone only prints its help"


def test_a_changed_source_file_makes_the_warm_process_stale(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text("x = 1\n")
    server = warm.Server("f", 60.0, tmp_path / "f.sock", sources={str(source): source.stat().st_mtime})
    assert server.stale() is None
    os.utime(source, (time.time() + 5, time.time() + 5))
    assert server.stale() == f"{source} changed"
    source.unlink()
    assert server.stale() == f"{source} is gone"


def test_a_socket_in_a_folder_others_can_open_is_never_used() -> None:
    """The request carries the caller's variables, secrets included."""
    import shutil
    import tempfile

    short = Path(tempfile.mkdtemp(prefix="w", dir="/tmp"))  # a socket's path holds 107 bytes at most
    try:
        _never_through_an_open_folder(short)
    finally:
        shutil.rmtree(short)


def _never_through_an_open_folder(tmp_path: Path) -> None:
    env = {"XDG_RUNTIME_DIR": str(tmp_path), "OPENAI_API_KEY": "sk-secret"}
    origin = warm.Origin(env, str(tmp_path), "f" * 24)
    path = warm.socket_path(origin.fingerprint, env)
    path.parent.mkdir()
    os.chmod(path.parent, 0o777)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    listener.settimeout(0.5)
    with listener:
        assert warm.forward(["data", "flow"], origin) is None
        with pytest.raises(TimeoutError):
            listener.accept()  # it never connected
        os.chmod(path.parent, 0o700)
        taken: list[bytes] = []

        def hang_up() -> None:  # takes the request, then closes without an answer
            conn, _ = listener.accept()
            with conn:
                taken.append(conn.recv(1))

        answering = threading.Thread(target=hang_up)
        answering.start()
        assert warm.forward(["data", "flow"], origin) is None  # no answer: it runs here
        answering.join()
        assert taken == [b"R"], "in its own folder it did connect"


# Real processes.


@pytest.mark.slow
def test_a_flow_command_runs_warm_on_its_own_output_and_exit_code_and_down_stops_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = warm_env(home, MLSTACK_ORCHESTRATION_API_IDLE_S="120")
    print_ = fingerprint_of(env)
    argv = mlstack("data", "flow", "--days", "1", "--json")
    cold = run(argv, env)
    assert cold.returncode == 0, cold.stderr[-3000:]
    assert served_pid(home, "data flow --days 1 --json") is None, "the first one ran in its own process"
    assert wait_for(lambda: warm.answers(print_, env)), warm_log(home)  # the cold command started it

    again = run(argv, env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert served_pid(home, "data flow --days 1 --json") is not None, warm_log(home)
    assert json.loads(again.stdout)["tables"] == json.loads(cold.stdout)["tables"]
    # What it had imported was out of the collector's reach in the child (its teardown's too).
    assert re.search(r"froze [1-9]\d* objects for the command", warm_log(home)), warm_log(home)
    # What the run imported on its own, the warm process imports now, for the next command.
    assert wait_for(lambda: re.search(r"learned [1-9]\d* module", warm_log(home)) is not None, 60)

    # A failure: the same one red line on stderr and exit code as in a process of its own.
    future = ["data", "flow", "--start", "2027-01-01", "--days", "1"]
    failed = run(mlstack(*future), env)
    assert served_pid(home, " ".join(future)) is not None, warm_log(home)
    assert failed.returncode == 1
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "validation failed" in errors[0], failed.stderr[-2000:]

    # No flow, or another environment: not sent to this warm process.
    assert run(mlstack("data", "flow", "--help"), env).returncode == 0
    other = warm_env(home, MLSTACK_ORCHESTRATION_API_IDLE_S="120", MLSTACK_DATA_MAX_BAD_ROW_SHARE="0.05")
    assert run(argv, other).returncode == 0
    served = [line for line in warm_log(home).splitlines() if ": mlstack " in line]
    assert len(served) == 2, warm_log(home)

    records = warm_records(home)
    assert print_ in {r["name"].removeprefix("warm-") for r in records}
    down = run(mlstack("down"), env)
    assert down.returncode == 0, down.stderr
    assert warm_records(home) == []
    assert all(not alive(r["pid"]) for r in records)
    assert not warm.answers(print_, env)


@pytest.mark.slow
def test_a_killed_caller_stops_its_command_and_an_idle_warm_process_stops(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = warm_env(home, MLSTACK_ORCHESTRATION_API_IDLE_S="8")
    print_ = fingerprint_of(env)
    assert run(mlstack("data", "flow", "--days", "1"), env).returncode == 0
    assert wait_for(lambda: warm.answers(print_, env)), warm_log(home)
    [record] = warm_records(home)

    for signum, command in ((signal.SIGTERM, "data flow --days 4"), (signal.SIGKILL, "data flow --days 5")):
        log = tmp_path / f"{signum}.log"
        with log.open("wb") as out:
            caller = subprocess.Popen(
                mlstack(*command.split()), env=env, stdout=out, stderr=subprocess.STDOUT
            )
        assert wait_for(output_has(log, "Beginning flow run"), 60), log.read_text()[-3000:]
        child = served_pid(home, command)
        assert child is not None and alive(child), warm_log(home)
        caller.send_signal(signum)
        code = caller.wait(timeout=60)
        assert wait_for(lambda child=child: not alive(child), 30), f"{command}: its child still runs"
        assert not [p for p in psutil.process_iter() if _group_of(p) == child], "its process group too"
        if signum == signal.SIGTERM:  # passed on: the child ended by it, and the caller says so
            assert code == 128 + signal.SIGTERM, (code, log.read_text()[-2000:])
            assert f"pid {child}: exit {128 + signal.SIGTERM}" in warm_log(home)

    # Nothing runs now: it stops after its idle time, taking its socket and its record along.
    assert wait_for(lambda: not alive(record["pid"]), 60), warm_log(home)
    assert "stopping: idle" in warm_log(home)
    assert warm_records(home) == []
    assert not warm.socket_path(print_, env).exists()


def _group_of(process: psutil.Process) -> int | None:
    try:
        return os.getpgid(process.pid) if process.status() != psutil.STATUS_ZOMBIE else None
    except (psutil.Error, ProcessLookupError):
        return None


def test_a_runtime_folder_too_deep_for_a_socket_falls_back_to_tmp() -> None:
    deep = "/var/" + "x" * 80
    assert str(warm.socket_path("f" * 24, {"TMPDIR": deep})).startswith("/tmp/mlstack-")
    assert str(warm.socket_path("f" * 24, {"XDG_RUNTIME_DIR": "/run/user/1000"})).startswith(
        "/run/user/1000/"
    )
    assert len(str(warm.socket_path("f" * 24, {"TMPDIR": "/" + "y" * warm.MAX_BASE}))) < 108


def test_onnxruntime_is_never_learned(tmp_path: Path) -> None:
    # it starts two C++ threads on import: a child forked beside them aborted at exit
    server = warm.Server("fingerprint", 60.0, tmp_path / "fp.sock")
    (tmp_path / "fp.learned").write_text("onnxruntime.never_imported_here\n")
    warm._learn(server)
    assert server.stopping is None and not (tmp_path / "fp.unsafe").exists()
    assert "onnxruntime.never_imported_here" not in server.tried  # not even tried


@pytest.mark.parametrize(
    ("passed", "status"), [([signal.SIGTERM], -signal.SIGTERM), ([signal.SIGHUP], -signal.SIGHUP), ([], 1)]
)
def test_a_child_given_the_callers_sigterm_ends_by_it_whatever_the_command_made_of_it(
    passed: list[int], status: int
) -> None:
    # Prefect's handler turns SIGTERM into an exception; one that ends up a failed run exits 1
    script = f"""
import signal, sys
from mlstack.cli import warm
def prefect_like(signum, frame):
    raise RuntimeError("the signal became some other failure")
signal.signal(signal.SIGTERM, prefect_like)
signal.signal(signal.SIGHUP, prefect_like)
warm.passed.extend({[int(s) for s in passed]})
try:
    sys.exit(1)
finally:
    warm.end_as_signalled()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == status, done.stderr
