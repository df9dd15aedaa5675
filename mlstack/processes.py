"""The one way to start a child service, and to tell whether the owner of a record still lives.

A service (a local model server; detached, the Prefect server, workers and the MLflow UI of
`mlstack up`, and the commands' local Prefect API) is started with `start_service`:
- it dies with its parent, even a SIGKILLed one. On Linux the child asks the kernel for
  SIGTERM when its parent goes (`prctl(PR_SET_PDEATHSIG)`), set by a small launcher just
  before it execs the service, so no fork-time hook runs in our threaded process. Elsewhere
  the launcher stays as a small watcher that stops the service when its parent is gone.
- it runs in its own session: a Ctrl-C in the terminal reaches the parent only, which stops its
  services in order instead of every process printing its own traceback.
- its output goes to a log file, whose tail is shown if it fails to come up.
- it is stopped at exit (SIGTERM, then SIGKILL after a grace period).

The kernel ties PR_SET_PDEATHSIG to the *thread* that forked the child, so every service is
forked by one daemon thread that lives as long as the process.

`owner()` and `owner_alive()` stamp records that a run leaves while it works (MLflow runs,
registry versions awaiting the gate, staging folders), so the next run can tell the ones whose
writer was killed from the ones still being written.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from functools import lru_cache
from pathlib import Path

from mlstack.errors import MlstackError

_LAUNCHER = """
import os, signal, sys
parent, argv = int(sys.argv[1]), sys.argv[2:]
if sys.platform.startswith("linux"):
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        sys.exit(1)
    os.execv(argv[0], argv)
import subprocess, time
child = subprocess.Popen(argv)
signal.signal(signal.SIGTERM, lambda *_: child.terminate())
while child.poll() is None:
    if os.getppid() != parent:
        child.terminate()
    time.sleep(0.5)
sys.exit(child.returncode)
"""

STOP_GRACE_S = 10.0


class ServiceFailed(MlstackError):
    """A child service that exited or did not answer in time; the message holds its log's tail."""


_requests: queue.Queue[tuple[Callable[[], subprocess.Popen], Future]] = queue.Queue()
_spawner: threading.Thread | None = None
_spawner_lock = threading.Lock()
_running: list[subprocess.Popen] = []


def _spawn_forever() -> None:
    while True:
        make, future = _requests.get()
        try:
            future.set_result(make())
        except BaseException as exc:  # handed to the caller, which raises it
            future.set_exception(exc)


def _fork(make: Callable[[], subprocess.Popen]) -> subprocess.Popen:
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = threading.Thread(target=_spawn_forever, name="mlstack-spawner", daemon=True)
            _spawner.start()
    future: Future[subprocess.Popen] = Future()
    _requests.put((make, future))
    return future.result()


def _popen(argv: list[str], log_path: Path, env: dict[str, str] | None, cwd: Path | None) -> subprocess.Popen:
    """argv in a session of its own, its output appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )


def spawn(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start argv tied to this process; it is stopped when this process exits or dies."""
    command = [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *argv]
    process = _fork(lambda: _popen(command, log_path, env, None))
    _running.append(process)
    return process


def spawn_detached(
    argv: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen:
    """Start argv to outlive this process (the services of `mlstack up`), in a session and process
    group of its own, so that `stop_group` later reaches everything it started."""
    return _popen(argv, log_path, env, cwd)


def start_service(
    argv: list[str],
    log_path: Path,
    ready: Callable[[], bool],
    timeout_s: float,
    what: str,
    env: dict[str, str] | None = None,
    *,
    detached: bool = False,
    cwd: Path | None = None,
    spawned: Callable[[subprocess.Popen], None] | None = None,
    port: int | None = None,
) -> subprocess.Popen:
    """`spawn` (or `spawn_detached`), then wait until `ready()`, and, given its `port`, until it
    is this process that listens there; stop it and raise ServiceFailed if it never is.
    `spawned` hears of the process before the wait: a detached service must be on record at
    once, or a caller killed while it waits would leave it running unknown."""
    process = spawn_detached(argv, log_path, env, cwd) if detached else spawn(argv, log_path, env)
    if spawned:
        spawned(process)
    deadline = time.monotonic() + timeout_s
    while not (ready() and (port is None or listens(process.pid, port))):
        if process.poll() is not None or time.monotonic() > deadline:
            if detached:
                stop_group(process.pid)
                process.wait()
            stop(process)
            why = (
                f"exited with code {process.returncode}"
                if process.returncode not in (None, -15)
                else f"did not answer within {timeout_s:g} s"
            )
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
            raise ServiceFailed(f"{what} {why}. Its log ({log_path}):\n{tail}")
        time.sleep(0.1)
    return process


def stop(process: subprocess.Popen, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM, then SIGKILL after the grace period; idempotent."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process in _running:
        _running.remove(process)


def stop_group(pid: int, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the process group `pid` leads (a detached service and what it started), then
    SIGKILL whatever is left of it after the grace period."""
    import psutil

    try:
        members = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        members = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    for member in members:  # a child that left the group still hears from us
        with contextlib.suppress(psutil.Error):
            member.terminate()
    _, alive = psutil.wait_procs(members, timeout=grace_s)
    for member in alive:
        with contextlib.suppress(psutil.Error):
            member.kill()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


@atexit.register
def stop_all() -> None:
    """Stop every service this process started, newest first."""
    for process in reversed(list(_running)):
        stop(process)


def console_script(name: str) -> str:
    """A console script of this Python environment (prefect, mlflow), whatever PATH says."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def answers(url: str) -> bool:
    """Whether an HTTP service answers 200 at `url` now: the readiness probe of our services."""
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def listens(pid: int, port: int) -> bool:
    """Whether the process `pid`, or one it started, listens on `port`. A health check alone can
    be answered by another program that took the port between `free_port` and the service's
    bind: in the suite, a command's local API was taken for ready on another test's server,
    which stopped a moment later ("Failed to reach API"), while its own was still importing."""
    import psutil

    try:
        family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return False
    for member in family:
        with contextlib.suppress(psutil.Error):
            if any(
                c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                for c in member.net_connections("tcp")
            ):
                return True
    return False


def free_port() -> int:
    """A loopback port that is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def owner() -> str:
    """This process, as `host:pid:start time`: a pid alone is reused."""
    return _owner(os.getpid())


def stamp_of(pid: int) -> str:
    """Another process, as `owner()` stamps this one."""
    return _owner.__wrapped__(pid)


@lru_cache(maxsize=4)  # keyed on the pid: a forked child is another owner
def _owner(pid: int) -> str:
    import psutil

    return f"{socket.gethostname()}:{pid}:{psutil.Process(pid).create_time():.0f}"


def owner_alive(stamp: str) -> bool:
    """Whether the process an `owner()` stamp names still runs. A stamp from another host, or one
    that cannot be read, counts as alive: only a writer known to be dead is cleaned up after."""
    import psutil

    if not stamp:
        return True
    host, _, rest = stamp.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        return f"{psutil.Process(int(pid)).create_time():.0f}" == started
    except psutil.Error:
        return False
