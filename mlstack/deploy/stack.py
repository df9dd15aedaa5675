"""`mlstack up` and `mlstack down`: a Prefect server, the MLflow UI, the Evidently UI and a
process worker on loopback, with their state under the data dir.

- The Prefect server keeps its database on Postgres (the embedded one, or `MLSTACK_PG_DSN`),
  in a database of its own named `prefect`: a SQLite-backed server reports "database is
  locked" under parallel load. `PREFECT_SERVER_DATABASE_CONNECTION_URL`, when the user sets
  it, wins.
- The MLflow UI serves the tracking store the flows write to. With an external
  `MLFLOW_TRACKING_URI` there is nothing to start: that server is the UI.
- The Evidently UI serves the monitoring flow's workspace (`home/evidently`): drift across
  windows, on its own port (8002), clear of `mlstack serve` (8000) and `serve-llm` (8001).
- The worker polls the `cpu` pool from `home/worker`, where deployments clone the code.

Each service runs detached, in a process group of its own, and leaves a record in
`home/stack/<name>.json` with its pid and its start time: a pid alone is reused, so a record
whose process is gone, or is another process now, is stale and removed, never trusted. `down`
stops exactly the services whose records are live, in reverse order.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from mlstack import locks, postgres, processes
from mlstack.deploy import project
from mlstack.deploy.project import CPU
from mlstack.errors import Busy, MlstackError
from mlstack.io import atomic_file
from mlstack.settings import Settings

PREFECT_DATABASE = "prefect"
DATABASE_VARIABLE = "PREFECT_SERVER_DATABASE_CONNECTION_URL"
HOST = "127.0.0.1"  # loopback only: put a proxy with authentication in front to share them

State = Literal["started", "running", "stopped", "not running", "external", "not configured"]


class Record(BaseModel):
    """What `up` leaves for one service it started."""

    name: str
    pid: int
    stamp: str = Field(description="host:pid:start time; tells the process from a reused pid.")
    url: str | None = None
    log: str | None = None


class ServiceLine(BaseModel):
    name: str
    state: State
    url: str | None = None
    pid: int | None = None
    log: str | None = None
    note: str | None = None


class StackResult(BaseModel):
    services: list[ServiceLine]
    api_url: str | None = Field(default=None, description="The Prefect API the services use.")


@dataclass(frozen=True)
class Spec:
    """How to start one service and tell when it answers."""

    name: str
    argv: list[str]
    url: str | None
    ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    port: int | None = None


def record_path(settings: Settings, name: str) -> Path:
    return settings.stack_dir / f"{name}.json"


def live_record(settings: Settings, name: str) -> tuple[Record | None, bool]:
    """(the record of a running service, whether a stale one was removed)."""
    path = record_path(settings, name)
    try:
        record = Record.model_validate_json(path.read_text())
    except FileNotFoundError:
        return None, False
    except ValueError:  # a torn or foreign file is as good as stale
        path.unlink(missing_ok=True)
        return None, True
    if processes.owner_alive(record.stamp) and exists(record.pid):
        return record, False
    path.unlink(missing_ok=True)
    return None, True


def exists(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def running_api_url(settings: Settings) -> str | None:
    """The API of the Prefect server `mlstack up` started, if it still runs."""
    record, _ = live_record(settings, "prefect")
    return record.url if record else None


def api_in_use(settings: Settings) -> str | None:
    """The Prefect API the commands use: the user's own PREFECT_API_URL, else `up`'s server."""
    return os.environ.get("PREFECT_API_URL") or running_api_url(settings)


def environment(settings: Settings) -> dict[str, str]:
    """The variables that point the plain `prefect` and `mlflow` commands (and a shell's scripts)
    where `mlstack` points: the data dir, the Prefect API its commands use (the user's own
    PREFECT_API_URL, else `up`'s server), and `up`'s MLflow server (else the tracking store
    itself, which the `mlflow` command reads directly)."""
    variables = {"MLSTACK_HOME": str(settings.home)}
    if url := api_in_use(settings):
        variables["PREFECT_API_URL"] = url
    mlflow, _ = live_record(settings, "mlflow")
    variables["MLFLOW_TRACKING_URI"] = mlflow.url if mlflow and mlflow.url else settings.tracking_uri
    return variables


def uis(settings: Settings) -> dict[str, str]:
    """Each UI: its address while it runs, else how to open it."""
    ports = settings.orchestration
    api = api_in_use(settings)
    found = {
        "Prefect UI": api.removesuffix("/api")
        if api
        else f"mlstack up, then http://{HOST}:{ports.prefect_port}"
    }
    for name, title, port in (
        ("mlflow", "MLflow UI", ports.mlflow_port),
        ("evidently", "Evidently UI", ports.evidently_port),
    ):
        record, _ = live_record(settings, name)
        found[title] = record.url if record and record.url else f"mlstack up, then http://{HOST}:{port}"
    if settings.tracking_uri.startswith(("http://", "https://")):  # the user's server is the UI
        found["MLflow UI"] = settings.tracking_uri
    return found


def write_record(settings: Settings, record: Record) -> None:
    with atomic_file(record_path(settings, record.name)) as tmp:
        tmp.write_text(record.model_dump_json(indent=2))


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def prefect_database_url(settings: Settings) -> str:
    """The Prefect server's database: the user's own URL, else a `prefect` database on our
    Postgres, created when missing."""
    from mlstack import bootstrap

    if os.environ.get(DATABASE_VARIABLE) and DATABASE_VARIABLE not in bootstrap.DEFAULTED:
        return os.environ[DATABASE_VARIABLE]
    import psycopg
    from psycopg import conninfo, sql
    from sqlalchemy.engine import URL

    dsn = postgres.resolve_dsn(settings)
    with postgres.connect(settings, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PREFECT_DATABASE,)).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(PREFECT_DATABASE)))
            except psycopg.errors.DuplicateDatabase:
                pass
            except psycopg.Error as exc:
                raise MlstackError(
                    f"could not create the {PREFECT_DATABASE!r} database for the Prefect server at"
                    f" {postgres.describe_dsn(dsn)}: {str(exc).strip()}. Create it, or set"
                    f" {DATABASE_VARIABLE} to a database the server may use."
                ) from None
    parts = conninfo.conninfo_to_dict(dsn)
    host = parts.get("host") or "localhost"
    socket_dir = host.startswith("/")
    return URL.create(
        "postgresql+asyncpg",
        username=parts.get("user"),
        password=parts.get("password") or None,
        host=None if socket_dir else host,
        port=None if socket_dir or not parts.get("port") else int(parts["port"]),
        database=PREFECT_DATABASE,
        query={"host": host} if socket_dir else {},
    ).render_as_string(hide_password=False)


def service_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_API_KEY")}
    env["MLSTACK_HOME"] = str(settings.home)  # every service and every run shares one data dir
    env.pop(DATABASE_VARIABLE, None)
    return env


def prefect_spec(settings: Settings) -> Spec:
    port = settings.orchestration.prefect_port
    url = f"http://{HOST}:{port}/api"
    env = {
        **service_env(settings),
        "PREFECT_HOME": str(settings.home / "prefect" / "server"),
        DATABASE_VARIABLE: prefect_database_url(settings),
        "PREFECT_SERVER_API_HOST": HOST,
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    argv = [processes.console_script("prefect"), "server", "start", "--host", HOST, "--port", str(port)]
    return Spec("prefect", argv, url, lambda: processes.answers(f"{url}/health"), env, port=port)


def mlflow_spec(settings: Settings) -> Spec:
    port = settings.orchestration.mlflow_port
    url = f"http://{HOST}:{port}"
    argv = [processes.console_script("mlflow"), "server", "--backend-store-uri", settings.tracking_uri]
    argv += ["--artifacts-destination", str(settings.mlflow_dir / "artifacts")]
    argv += ["--host", HOST, "--port", str(port), "--workers", "1"]
    env = {**service_env(settings), "MLFLOW_LOGGING_LEVEL": "WARNING"}
    # Its job runner (eight more processes, for server-side GenAI jobs this stack does not use)
    # doubles the UI's start on two cores; MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true brings it back.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return Spec("mlflow", argv, url, lambda: processes.answers(f"{url}/health"), env, port=port)


def evidently_spec(settings: Settings) -> Spec:
    """The Evidently UI on the monitoring flow's workspace: drift across windows."""
    port = settings.orchestration.evidently_port
    url = f"http://{HOST}:{port}"
    settings.evidently_dir.mkdir(parents=True, exist_ok=True)
    argv = [processes.console_script("evidently"), "ui", "--workspace", str(settings.evidently_dir)]
    argv += ["--host", HOST, "--port", str(port)]
    env = service_env(settings)  # with bootstrap's DO_NOT_TRACK: its telemetry would only fail offline
    return Spec("evidently", argv, url, lambda: processes.answers(f"{url}/api/projects"), env, port=port)


def worker_spec(settings: Settings, api_url: str) -> Spec:
    name = f"mlstack-{os.uname().nodename}"
    argv = [
        processes.console_script("prefect"),
        "worker",
        "start",
        "--pool",
        CPU,
        "--type",
        "process",
        "--name",
        name,
    ]
    env = {**service_env(settings), "PREFECT_API_URL": api_url}
    # Prefect's default is to ask the server for work every 10 s: most of an event's latency to
    # its run. A local server answers a 2 s poll without effort.
    env.setdefault("PREFECT_WORKER_QUERY_SECONDS", "2")
    settings.worker_dir.mkdir(parents=True, exist_ok=True)
    return Spec("worker", argv, None, _worker_online(api_url, name), env, cwd=settings.worker_dir)


def webhooks_spec(settings: Settings, api_url: str) -> Spec:
    """The webhook receiver (`mlstack serve-webhooks`), sending its events to `up`'s server."""
    hooks = settings.webhooks
    url = f"http://{hooks.host}:{hooks.port}"
    argv = [
        sys.executable,
        "-m",
        "mlstack.cli",
        "serve-webhooks",
        "--host",
        hooks.host,
        "--port",
        str(hooks.port),
    ]
    env = {**service_env(settings), "PREFECT_API_URL": api_url}
    return Spec("webhooks", argv, url, lambda: processes.answers(f"{url}/health"), env, port=hooks.port)


def webhooks_configured(settings: Settings) -> bool:
    return settings.webhooks.github_secret is not None or settings.webhooks.slack_signing_secret is not None


WEBHOOKS_OFF = (
    "off: set MLSTACK_WEBHOOKS_GITHUB_SECRET and/or MLSTACK_WEBHOOKS_SLACK_SIGNING_SECRET"
    " (docs/webhooks.md), then `mlstack up` again"
)


def _worker_online(api_url: str, name: str) -> Callable[[], bool]:
    def ready() -> bool:
        import httpx

        try:
            answer = httpx.post(f"{api_url}/work_pools/{CPU}/workers/filter", json={}, timeout=2)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and any(
            w["name"] == name and w.get("status") == "ONLINE" for w in answer.json()
        )

    return ready


def _ensure(settings: Settings, make: Callable[[], Spec], name: str) -> ServiceLine:
    record, stale = live_record(settings, name)
    note = "a stale pid file was removed" if stale else None
    spec = make()
    if record:
        # A live process is not yet a service that answers: an `up` killed while this one
        # started left it on record, still starting (or stuck). Wait for it as a start would.
        if answers_within(spec.ready, settings.orchestration.up_timeout_s):
            return ServiceLine(name=name, state="running", url=record.url, pid=record.pid, log=record.log)
        processes.stop_group(record.pid)
        record_path(settings, name).unlink(missing_ok=True)
        note = f"the recorded process {record.pid} did not answer within the start timeout: replaced"
    if spec.port is not None and not _port_free(spec.port):
        variable = (
            "MLSTACK_WEBHOOKS_PORT" if name == "webhooks" else f"MLSTACK_ORCHESTRATION_{name.upper()}_PORT"
        )
        raise Busy(
            f"port {spec.port} on {HOST} is taken by another program, so the {name} service cannot"
            f" start: stop that program, or set {variable} to a free port"
        )
    log = settings.stack_dir / f"{name}.log"

    def on_record(process: subprocess.Popen) -> None:
        # Before the wait: an `up` killed while the service starts leaves it where `down` finds it.
        stamp = processes.stamp_of(process.pid)
        write_record(settings, Record(name=name, pid=process.pid, stamp=stamp, url=spec.url, log=str(log)))

    try:
        process = processes.start_service(
            spec.argv,
            log,
            spec.ready,
            settings.orchestration.up_timeout_s,
            f"the {name} service",
            spec.env,
            detached=True,
            cwd=spec.cwd,
            spawned=on_record,
        )
    except processes.ServiceFailed:
        record_path(settings, name).unlink(missing_ok=True)
        raise
    return ServiceLine(name=name, state="started", url=spec.url, pid=process.pid, log=str(log), note=note)


def answers_within(ready: Callable[[], bool], timeout_s: float) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _postgres(settings: Settings) -> ServiceLine:
    if settings.postgres.dsn:
        target = postgres.describe_dsn(settings.postgres.dsn.get_secret_value())
        return ServiceLine(name="postgres", state="external", url=target)
    record, stale = live_record(settings, "postgres")
    if record:
        return ServiceLine(name="postgres", state="running", url=record.url, pid=record.pid)
    where = str(settings.pg_dir)
    if postgres.embedded_running(settings.pg_dir):  # started by a flow or a command: not ours to stop
        return ServiceLine(name="postgres", state="running", url=where, note="started before `up`; stays")
    postgres.resolve_dsn(settings)
    pid = postgres.embedded_pid(settings.pg_dir)
    write_record(settings, Record(name="postgres", pid=pid, stamp=processes.stamp_of(pid), url=where))
    note = "a stale pid file was removed" if stale else None
    return ServiceLine(name="postgres", state="started", url=where, pid=pid, note=note)


def up(settings: Settings) -> StackResult:
    """Start whatever of postgres, prefect, mlflow and the worker is not running."""
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    with locks.file_lock(settings.stack_dir, timeout_s=settings.orchestration.up_timeout_s * 4):
        lines = [_postgres(settings)]
        # The servers start side by side: each spends most of its start importing.
        with ThreadPoolExecutor(3) as pool:
            prefect = pool.submit(_ensure, settings, lambda: prefect_spec(settings), "prefect")
            if settings.tracking_uri.startswith(("http://", "https://")):
                mlflow = None
            else:
                mlflow = pool.submit(_ensure, settings, lambda: mlflow_spec(settings), "mlflow")
            evidently = pool.submit(_ensure, settings, lambda: evidently_spec(settings), "evidently")
            lines.append(prefect.result())
            external = ServiceLine(name="mlflow", state="external", url=settings.tracking_uri)
            lines.append(mlflow.result() if mlflow else external)
            lines.append(evidently.result())
        api_url = lines[1].url
        assert api_url is not None
        project.ensure_pools(api_url, settings)
        lines.append(_ensure(settings, lambda: worker_spec(settings, api_url), "worker"))
        if webhooks_configured(settings):
            lines.append(_ensure(settings, lambda: webhooks_spec(settings, api_url), "webhooks"))
        else:
            lines.append(ServiceLine(name="webhooks", state="not configured", note=WEBHOOKS_OFF))
    return StackResult(services=lines, api_url=api_url)


def down(settings: Settings, stop_postgres: bool = False) -> StackResult:
    """Stop every service `up` started, newest first; clean up records whose process is gone.
    The embedded Postgres started by a flow or a command keeps running for the next one (a start
    costs about a second), unless `stop_postgres`; its data stays either way."""
    lines = []
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    with locks.file_lock(settings.stack_dir, timeout_s=settings.orchestration.up_timeout_s * 4):
        # The commands' local API too (mlstack.deploy.api): `down` leaves nothing of ours running.
        warm = sorted(p.stem for p in settings.stack_dir.glob("warm-*.json"))  # mlstack.cli.warm
        for name in ("webhooks", "worker", "evidently", "mlflow", "prefect", "api", *warm, "postgres"):
            record, stale = live_record(settings, name)
            note = "a stale pid file was removed" if stale else None
            if record is None and name == "postgres" and not settings.postgres.dsn:
                lines.append(_unrecorded_postgres(settings, stop_postgres, note))
                continue
            if record is None:
                lines.append(ServiceLine(name=name, state="not running", note=note))
                continue
            if name == "postgres":
                postgres.stop_embedded(settings.pg_dir)
            else:
                processes.stop_group(record.pid)
            with contextlib.suppress(FileNotFoundError):
                record_path(settings, name).unlink()
            lines.append(ServiceLine(name=name, state="stopped", url=record.url, pid=record.pid))
    return StackResult(services=lines)


def _unrecorded_postgres(settings: Settings, stop: bool, note: str | None) -> ServiceLine:
    """The embedded Postgres that a flow or a command started, not `up`."""
    where = str(settings.pg_dir)
    if not postgres.embedded_running(settings.pg_dir):
        return ServiceLine(name="postgres", state="not running", note=note)
    if not stop:
        keep = "started by a command; keeps running with its data: `mlstack down --postgres` stops it"
        return ServiceLine(name="postgres", state="running", url=where, note=keep)
    pid = postgres.embedded_pid(settings.pg_dir)
    postgres.stop_embedded(settings.pg_dir)
    return ServiceLine(name="postgres", state="stopped", url=where, pid=pid, note="its data is kept")
