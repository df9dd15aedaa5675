"""The warm process: flow commands run in a process that has Prefect, the CLI and the command's
flow module imported already, so a command costs its work, not its imports.

A flow command spends about 2.5 s importing Prefect and 1-2 s more importing its flow's libraries
(Feast, pandera, Evidently) before it does anything, on every run (`benchmarks/orchestration.py`
measures it). The first flow command that runs in a process of its own starts a warm process for
its environment, detached, and goes on. A later `mlstack` command run with the same environment
(its variables, its directory and the `.env` files it would read: the fingerprint) connects to the
warm process's Unix socket and hands over its arguments, its variables, and its stdin, stdout and
stderr (`SCM_RIGHTS`). The warm process imports the command's flow module (once), forks, and the
child runs the command on the caller's terminal, as `mlstack` would have. The caller stays as
the child's stand-in: it passes on Ctrl-C, SIGTERM and SIGHUP, and exits with the child's status.
A command that runs no flow (`--help`, `up`, `serve`, ...) is turned away and runs as before.

It learns, too: each child lists the modules its run imported that the warm process had not
(Prefect's and the libraries' lazy imports, 671 modules for a data flow), and the warm process
imports them after the child ends, so the next command finds them loaded.

What keeps it safe:
- It forks from one Python thread only: nothing it imports may start one, and it stops serving
  if an import did (that module is then left out of what the next warm process learns). The
  native pools some libraries start (jemalloc's, OpenBLAS's) handle a fork themselves. Each child
  reseeds numpy's global generator, which a fork would share between siblings.
- A killed caller (even SIGKILL) closes its socket; the child notices and stops its own process
  group, so what the command started stops too.
- It stops itself after `MLSTACK_ORCHESTRATION_API_IDLE_S` with no command running, it is on
  record in the stack folder (`mlstack down` stops it at once, and the commands it runs), and it
  stops when a source file it imported changes: it never runs stale code.
- Its socket sits in a folder only this user can open (mode 0700), and its name is the
  fingerprint: a command from another environment never reaches it.

`MLSTACK_ORCHESTRATION_WARM=false` turns it off. Only the standard library is imported at the
top of this module: the caller's side (`forward`) runs before anything else in `mlstack`.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NAME = "warm"  # its records in the stack folder are warm-<fingerprint>.json
# Variables a shell changes from one command to the next, which no setting reads.
VOLATILE = frozenset({"PWD", "OLDPWD", "SHLVL", "_", "COLUMNS", "LINES"})
HANDSHAKE_TIMEOUT_S = 5.0
MAX_BASE = 60  # leaves room for /mlstack-UID/FINGERPRINT.sock
ANSWER_TIMEOUT_S = 120.0
STOP_GRACE_S = 5.0
PASSED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
CHECKOUT = Path(__file__).resolve().parents[2]
OWN_SOURCES = ("mlstack", "flows", "models", "monitoring", "feature_repo")
# What every flow command imports, in this order: bootstrap first, as in every entry point.
WARM_IMPORTS = ("mlstack.bootstrap", "prefect.flow_engine", "prefect.task_engine", "mlstack.cli.root")
# Packages whose import starts native threads that a forked child cannot outlive: never learned.
# onnxruntime (the embedder) starts two in C++; a child forked beside them aborted at exit
# (std::system_error). Counting native threads instead cannot tell these from fork-safe ones:
# numpy's OpenBLAS pool, which pandas brings, would have stopped every warm process.
NEVER_LEARNED = ("onnxruntime",)
# The caller's signal that a forked child was given, if any (`_watch_caller` sets it).
passed: list[int] = []


@dataclass(frozen=True)
class Origin:
    """How this `mlstack` process was started, before anything changed its environment."""

    env: dict[str, str]
    cwd: str
    fingerprint: str


ORIGIN: Origin | None = None  # set by the `mlstack` entry point only, not by tests' in-process runs


def fingerprint(env: dict[str, str], cwd: str) -> str:
    """What a command's settings are made of: its variables (less a shell's volatile ones), its
    directory, the interpreter, and every `.env` file that `mlstack.settings.env_file` may read."""
    files = [env.get("MLSTACK_ENV_FILE") or "", os.path.join(cwd, ".env"), str(CHECKOUT / ".env")]
    contents = []
    for name in files:
        try:
            contents.append((name, hashlib.sha256(Path(name).read_bytes()).hexdigest()))
        except OSError:
            contents.append((name, None))
    stable = sorted((k, v) for k, v in env.items() if k not in VOLATILE)
    blob = json.dumps([stable, cwd, sys.executable, contents])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def socket_folder(env: dict[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_RUNTIME_DIR") or env.get("TMPDIR") or "/tmp"
    if len(base) > MAX_BASE:  # a Unix socket's path holds 107 bytes at most
        base = "/tmp"
    return Path(base) / f"mlstack-{os.getuid()}"


def socket_path(print_: str, env: dict[str, str] | None = None) -> Path:
    return socket_folder(env) / f"{print_}.sock"


def _send(conn: socket.socket, message: dict[str, Any]) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def _exit_code(status: int) -> int:
    """A child's wait status as a shell reports it: a signal N is 128 + N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


# The caller's side: the `mlstack` entry point.


def remember_origin() -> Origin:
    global ORIGIN
    env, cwd = dict(os.environ), os.getcwd()
    ORIGIN = Origin(env, cwd, fingerprint(env, cwd))
    return ORIGIN


def forward(argv: list[str], origin: Origin) -> int | None:
    """Run `mlstack argv` in the warm process for this environment and return its exit code, or
    None when there is no warm process or it turned the command away: run it here then."""
    path = socket_path(origin.fingerprint, origin.env)
    try:  # the request carries the caller's variables, secrets included: only to our own folder
        folder = os.stat(path.parent)
        if folder.st_uid != os.getuid() or folder.st_mode & 0o077 or not path.exists():
            return None
    except OSError:
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(HANDSHAKE_TIMEOUT_S)
        conn.connect(str(path))
        request = json.dumps({"argv": argv, "env": origin.env, "cwd": origin.cwd}).encode() + b"\n"
        socket.send_fds(conn, [b"R"], [0, 1, 2])
        conn.sendall(request)
        # The answer may wait for the first import of the command's flow module. Giving up is
        # safe: a child forked after the caller left finds its socket closed and stops unstarted.
        conn.settimeout(ANSWER_TIMEOUT_S)
        replies = conn.makefile("rb")
        answer = json.loads(replies.readline() or b"{}")
    except (OSError, ValueError):
        conn.close()
        return None
    if not answer.get("accepted"):
        conn.close()
        return None
    conn.settimeout(None)

    def pass_on(signum: int, _frame: Any) -> None:
        with contextlib.suppress(OSError):
            _send(conn, {"signal": signum})

    for signum in PASSED_SIGNALS:
        signal.signal(signum, pass_on)
    while True:
        try:
            line = replies.readline()
        except InterruptedError:  # a signal we passed on; keep waiting for the exit
            continue
        if not line:
            print("error: the warm process ended before the command did; run it again", file=sys.stderr)
            return 1
        message = json.loads(line)
        if "exit" in message:
            return int(message["exit"])


# The warm process's side.


@dataclass
class Job:
    """A command a forked child runs: what `serve` returns in the child."""

    conn: socket.socket
    fds: list[int]
    argv: list[str]
    env: dict[str, str]
    cwd: str
    learned: Path  # where the child lists the modules it had to import itself


@dataclass
class Server:
    print_: str
    idle_s: float
    path: Path
    listener: socket.socket | None = None
    children: dict[int, socket.socket] = field(default_factory=dict)
    sources: dict[str, float] = field(default_factory=dict)
    tried: set[str] = field(default_factory=set)  # learned modules imported, or that failed to
    last: float = field(default_factory=time.monotonic)
    stopping: str | None = None  # why it takes no more commands
    lock: Any = None  # the open lock file: one warm process per fingerprint
    pid: int = field(default_factory=os.getpid)

    def note_sources(self) -> None:
        """The modification times of every source file of ours imported so far."""
        for module in list(sys.modules.values()):
            name = getattr(module, "__file__", None)
            if name and name not in self.sources and _own(name):
                with contextlib.suppress(OSError):
                    self.sources[name] = os.stat(name).st_mtime

    def stale(self) -> str | None:
        for name, mtime in self.sources.items():
            try:
                if os.stat(name).st_mtime != mtime:
                    return f"{name} changed"
            except OSError:
                return f"{name} is gone"
        return None


def _own(name: str) -> bool:
    path = Path(name)
    return any(path.is_relative_to(CHECKOUT / top) for top in OWN_SOURCES)


def flow_module(argv: list[str]) -> str | None:
    """The flow module a flow command imports, or None for a command that runs no flow."""
    import inspect
    import re

    command = _root_command()
    for token in argv:  # typer's groups (its own copy of click's): by what they hold
        if token in ("--help", "-h"):
            return None
        if token.startswith("-"):
            continue
        if not hasattr(command, "commands"):
            break
        command = command.commands.get(token)
        if command is None:
            return None
    if hasattr(command, "commands") or command.callback is None:
        return None
    source = inspect.getsource(inspect.unwrap(command.callback))
    found = re.search(r"from (flows(?:\.\w+)+) import", source)
    return found.group(1) if found and "run_flow(" in source else None


@functools.cache
def _root_command() -> Any:
    import typer

    from mlstack.cli.root import app

    return typer.main.get_command(app)


def _threads() -> int:
    import threading

    return threading.active_count()


def serve(print_: str, idle_s: float, preload: str | None) -> Job | None:
    """Serve commands until idle; returns None in the warm process, a Job in each forked child."""
    import fcntl
    import importlib

    server = Server(print_, idle_s, socket_path(print_))
    server.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(server.path.parent, 0o700)
    server.lock = open(server.path.with_suffix(".lock"), "a")  # noqa: SIM115  (held while serving)
    try:
        fcntl.flock(server.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print(f"a warm process already serves {server.path}", flush=True)
        return None
    for name in (*WARM_IMPORTS, *([preload] if preload else [])):
        try:
            importlib.import_module(name)
        except ImportError as exc:  # a flow's missing extra: its command says so, as it does cold
            print(f"not imported: {name}: {exc}", flush=True)
    _learn(server)
    if _threads() > 1 or server.stopping:
        print(f"not serving: {server.stopping or 'an import started a thread'}", flush=True)
        return None
    try:
        return _serve(server)
    finally:
        if os.getpid() == server.pid:
            _stop_listening(server)
            _drop_record(print_)


def _serve(server: Server) -> Job | None:
    import selectors

    server.path.unlink(missing_ok=True)
    server.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.listener.bind(str(server.path))
    os.chmod(server.path, 0o600)
    server.listener.listen(16)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the selector through the pipe
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "stopping", "SIGTERM"))
    selector = selectors.DefaultSelector()
    selector.register(server.listener, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    print(f"serving {server.path} (pid {server.pid}, idle stop {server.idle_s:g} s)", flush=True)
    server.last = time.monotonic()  # idle from now: the imports took seconds
    while True:
        waiting = max(0.1, server.idle_s - (time.monotonic() - server.last))
        for key, _ in selector.select(timeout=min(waiting, 1.0)):
            if key.fileobj is wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 512)
                continue
            job = _accept(server) if server.listener is not None else None
            if job is not None:  # in the child, from here on
                selector.close()
                signal.set_wakeup_fd(-1)
                for fd in (wake_r, wake_w):
                    os.close(fd)
                return job
        if server.stopping and server.listener is not None:
            selector.unregister(server.listener)
            _stop_listening(server)
        if _reap(server):
            _learn(server)
        if server.children:
            server.last = time.monotonic()
        elif server.stopping or time.monotonic() - server.last > server.idle_s:
            print(f"stopping: {server.stopping or 'idle'}", flush=True)
            return None


def _stop_listening(server: Server) -> None:
    """Take no more commands, and free the socket's name and the lock for a new warm process
    while the commands still running end."""
    if server.listener is not None:
        server.listener.close()
        server.listener = None
        server.path.unlink(missing_ok=True)
    if server.lock is not None:
        server.lock.close()
        server.lock = None


def _accept(server: Server) -> Job | None:
    """Take one command: turn it away, or fork a child for it (which gets the Job)."""
    import importlib

    assert server.listener is not None
    conn, _ = server.listener.accept()
    conn.settimeout(HANDSHAKE_TIMEOUT_S)
    fds: list[int] = []
    try:
        _, fds, _, _ = socket.recv_fds(conn, 1, 3)
        request = json.loads(conn.makefile("rb").readline())
        why = server.stopping or server.stale()
        module = None if why else flow_module(request["argv"])
        if module and module not in sys.modules:
            importlib.import_module(module)
            server.note_sources()
        if _threads() > 1:
            why = server.stopping = "an import started a thread"
        if why:  # take no more: the next cold command starts a fresh warm process
            server.stopping = why
        if why or module is None or len(fds) != 3:
            _send(conn, {"accepted": False, "why": why or "not a flow command"})
            raise ConnectionAbortedError  # turned away: closed below
    except Exception:  # whatever went wrong, the command runs in its own process and says so there
        for fd in fds:
            os.close(fd)
        conn.close()
        return None
    server.last = time.monotonic()
    # Everything imported so far is moved out of the collector's reach (the fork recipe in the gc
    # module's docs): the child's collections skip it, and so does its interpreter teardown.
    # Warm `mlstack rag ask --extractive` on this project's docs: 0.49 s from its last atexit
    # handler to the caller's end, 0.20 s frozen; 1.13 s to 0.75-0.78 s in all (medians of four).
    gc.freeze()
    print(f"froze {gc.get_freeze_count()} objects for the command", flush=True)
    pid = os.fork()
    if pid == 0:
        assert server.listener is not None
        server.listener.close()
        server.lock.close()  # the lock is the warm process's, not its commands'
        for other in server.children.values():
            other.close()
        return Job(conn, fds, request["argv"], request["env"], request["cwd"], _learned(server.path))
    for fd in fds:
        os.close(fd)
    print(f"pid {pid}: mlstack {' '.join(request['argv'])}", flush=True)
    server.children[pid] = conn
    conn.settimeout(None)
    with contextlib.suppress(OSError):
        _send(conn, {"accepted": True, "pid": pid})
    return None


def _learned(path: Path) -> Path:
    return path.with_suffix(".learned")


def _learn(server: Server) -> None:
    """Import what the commands run so far imported at run time (Prefect's and the flows' lazy
    imports): on 2 cores a data flow spent 1 s importing 671 modules in every child."""
    import importlib

    learned_path, unsafe_path = _learned(server.path), server.path.with_suffix(".unsafe")
    names = learned_path.read_text().split() if learned_path.exists() else []  # none ended yet
    unsafe = set(unsafe_path.read_text().split()) if unsafe_path.exists() else set()
    learned = 0
    for name in names:
        if name in sys.modules or name in server.tried or name in unsafe:
            continue
        if name.split(".")[0] in NEVER_LEARNED:
            continue
        server.tried.add(name)
        try:
            importlib.import_module(name)
        except Exception:  # a module made at run time, or one that needs what a run sets up
            continue
        if _threads() > 1:  # checked per module: the next warm process leaves this one out
            server.stopping = f"importing {name} started a thread"
            with unsafe_path.open("a") as out:
                out.write(f"{name}\n")
            return
        learned += 1
    server.note_sources()
    print(f"learned {learned} module(s) the commands imported", flush=True)


def _reap(server: Server) -> bool:
    """Report the exit of every child that ended; whether any did."""
    ended = False
    for pid in list(server.children):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done:
            ended = True
            conn = server.children.pop(pid)
            print(f"pid {pid}: exit {_exit_code(status)}", flush=True)
            with contextlib.suppress(OSError):
                _send(conn, {"exit": _exit_code(status)})
            conn.close()
    return ended


def _drop_record(print_: str) -> None:
    """Remove this process's record (`start` wrote it), unless it is another's by now."""
    from mlstack import processes
    from mlstack.deploy import stack
    from mlstack.settings import get_settings

    path = stack.record_path(get_settings(), f"{NAME}-{print_}")
    with contextlib.suppress(FileNotFoundError, ValueError):
        if stack.Record.model_validate_json(path.read_text()).stamp == processes.owner():
            path.unlink()


def become(job: Job) -> None:
    """Turn this forked child into the caller's command: its terminal, directory and variables."""
    import atexit
    import io
    import threading

    os.setpgid(0, 0)  # a group of its own: a caller that is gone takes all of it down
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for target, fd in enumerate(job.fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=os.isatty(1)
    )
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", line_buffering=True
    )
    os.chdir(job.cwd)
    for name in VOLATILE - job.env.keys():
        os.environ.pop(name, None)
    os.environ.update(job.env)
    sys.argv = ["mlstack", *job.argv]
    if "numpy" in sys.modules:  # a fork shares the generator's state with every sibling
        sys.modules["numpy"].random.seed()
    from prefect.logging.configuration import setup_logging

    from mlstack.cli import render

    setup_logging(incremental=False)  # Prefect's console handler, on this stderr
    render.reattach()
    job.conn.settimeout(None)
    try:  # a caller that gave up waiting has closed its socket: do not start its command
        gone = job.conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        gone = False
    if gone:
        os._exit(1)
    threading.Thread(target=_watch_caller, args=(job.conn,), name="mlstack-warm-caller", daemon=True).start()
    atexit.register(_record_imports, job.learned, frozenset(sys.modules))


def _record_imports(learned: Path, before: frozenset[str]) -> None:
    """List the modules this command imported that the warm process had not, for it to import."""
    new = sorted(set(sys.modules) - before)
    if new:
        with contextlib.suppress(OSError), learned.open("a") as out:
            out.write("".join(f"{name}\n" for name in new))


def _watch_caller(conn: socket.socket) -> None:
    """Pass on the caller's signals; when the caller is gone, stop this command's process group."""
    reader = conn.makefile("rb")
    for line in reader:
        with contextlib.suppress(ValueError, KeyError):
            signum = int(json.loads(line)["signal"])
            passed.append(signum)
            os.kill(os.getpid(), signum)
    for signum in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(0, signum)
        time.sleep(STOP_GRACE_S)


def answers(print_: str, env: dict[str, str] | None = None) -> bool:
    """Whether a warm process serves this fingerprint (it listens once its imports are done)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with probe:
        try:
            probe.connect(str(socket_path(print_, env)))
        except OSError:
            return False
        return True


def start(origin: Origin, preload: str | None, settings: Any) -> None:
    """Start the warm process for `origin`'s environment, detached, unless one serves it already.
    It is on record before this returns, under the stack folder's lock: `mlstack down` stops one
    that is still importing, too."""
    import subprocess

    from mlstack import locks, processes
    from mlstack.deploy import stack

    if answers(origin.fingerprint, origin.env):
        return
    log = settings.stack_dir / f"{NAME}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "mlstack.cli.warm", "--fingerprint", origin.fingerprint]
    argv += ["--idle-s", str(settings.orchestration.api_idle_s), *(["--preload", preload] if preload else [])]
    with locks.file_lock(settings.stack_dir), log.open("ab") as out:
        if stack.live_record(settings, f"{NAME}-{origin.fingerprint}")[0]:
            return  # one is starting: its imports take seconds
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=origin.env,
            cwd=origin.cwd,
            start_new_session=True,
        )
        path = socket_path(origin.fingerprint, origin.env)
        record = stack.Record(
            name=f"{NAME}-{origin.fingerprint}",
            pid=process.pid,
            stamp=processes.stamp_of(process.pid),
            url=f"unix://{path}",
            log=str(log),
        )
        stack.write_record(settings, record)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="The warm process of mlstack's flow commands.")
    parser.add_argument("--fingerprint", required=True, help="The environment it serves.")
    parser.add_argument("--idle-s", type=float, required=True, help="Stop after this long unused.")
    parser.add_argument("--preload", help="A flow module to import before the first command.")
    args = parser.parse_args(argv)
    job = serve(args.fingerprint, args.idle_s, args.preload)
    if job is None:
        return
    become(job)
    from mlstack.cli.root import app

    try:
        app(args=job.argv, prog_name="mlstack")
    finally:
        end_as_signalled()


def end_as_signalled() -> None:
    """End by the SIGTERM or SIGHUP the caller passed on, whatever the command made of it, so
    the caller's status says so (128 + N). During a flow run Prefect's handler turns SIGTERM into
    an exception, and where that lands in the task engine before its task run exists it becomes
    `ValueError: Task run is not set`, a failed run and exit 1 (seen in CI)."""
    for signum in passed:
        if signum in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(OSError, ValueError):  # a terminal already gone
                sys.stdout.flush()
                sys.stderr.flush()
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)


if __name__ == "__main__":
    main()
