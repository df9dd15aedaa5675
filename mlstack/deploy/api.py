"""Which Prefect API a command's flow runs talk to, started when there is none.

In order: the configured `PREFECT_API_URL`; the server of `mlstack up` (so the run shows in its
UI); else a local API of this data dir's own, which the first command starts and later commands
reuse, and which stops itself once nothing has used it for `MLSTACK_ORCHESTRATION_API_IDLE_S`.
Starting Prefect's server costs 10-14 s on 2 cores, more than many commands' work; a command
that finds it running pays a health check.

It never outlives its use by long: it is a detached process on record in the stack folder (so a
command killed while it starts leaves it where `mlstack down` finds it), it counts open requests
and websockets and stops after the idle time with none, and `mlstack down` stops it at once.
Prefect's own ephemeral server instead outlived a SIGKILLed parent for ever (about 200 MB each).
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any
from urllib.parse import urlsplit

NAME = "api"  # its record in the stack folder, beside up's services
CHECK_EVERY_S = 1.0
# Until a client has made a request other than the readiness check, idle means at least this long.
# The command that started the API uses it a moment later, but that moment (imports, Prefect's
# client setup) can pass a short idle time on a loaded machine: in CI, with 5 s, the API stopped
# before the command's first request ("Failed to reach API"). One that never comes: it stops.
STARTUP_GRACE_S = 60.0


def ensure_api() -> None:
    """Point this process at a Prefect API: the configured one, `up`'s, or the local one."""
    import os

    from prefect.context import refresh_global_settings_context
    from prefect.settings import PREFECT_API_URL

    from mlstack.deploy.stack import running_api_url
    from mlstack.settings import get_settings

    if PREFECT_API_URL.value():
        return
    settings = get_settings()
    url = running_api_url(settings) or local_api(settings)
    os.environ["PREFECT_API_URL"] = url
    refresh_global_settings_context()


def local_api(settings: Any) -> str:
    """The URL of this data dir's local API, started if it is not running."""
    import sys

    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, get_current_settings

    from mlstack import locks, processes
    from mlstack.deploy import stack

    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    timeout_s = PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
    with locks.file_lock(settings.stack_dir, timeout_s=timeout_s * 4):  # one start for many commands
        record, _ = stack.live_record(settings, NAME)
        if record and record.url:
            health = f"{record.url}/health"
            # Still starting, or stopping for idleness: wait for one or the other, not the timeout.
            stack.answers_within(lambda: processes.answers(health) or not stack.exists(record.pid), timeout_s)
            if processes.answers(health) and processes.listens(record.pid, urlsplit(record.url).port or 0):
                return record.url
        if record:  # on record but not answering: a start killed half-way, or stuck
            processes.stop_group(record.pid)
            stack.record_path(settings, NAME).unlink(missing_ok=True)
        env = {
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
            **get_current_settings().to_environment_variables(exclude_unset=True),
        }
        env.pop("PREFECT_API_URL", None)
        log = settings.stack_dir / f"{NAME}.log"
        for attempt in range(3):  # another process may take the free port before uvicorn binds it
            url = f"http://{stack.HOST}:{(port := processes.free_port())}/api"

            def on_record(process: Any, url: str = url) -> None:
                stamp = processes.stamp_of(process.pid)
                stack.write_record(
                    settings, stack.Record(name=NAME, pid=process.pid, stamp=stamp, url=url, log=str(log))
                )

            argv = [sys.executable, "-m", "mlstack.deploy.api", "--port", str(port)]
            argv += ["--idle-s", str(settings.orchestration.api_idle_s)]
            try:
                processes.start_service(
                    argv,
                    log,
                    ready=lambda url=url: processes.answers(f"{url}/health"),
                    timeout_s=timeout_s,
                    what="the local Prefect API server",
                    env={**stack.service_env(settings), **env},
                    detached=True,
                    spawned=on_record,
                    port=port,
                )
                return url
            except processes.ServiceFailed:
                stack.record_path(settings, NAME).unlink(missing_ok=True)
                if attempt == 2:
                    raise
    raise AssertionError("unreachable")


class IdleStop:
    """ASGI middleware that counts open requests and websockets, and tells uvicorn to stop once
    none has been open for `idle_s`. A flow run holds the events websocket for as long as it
    runs, so a long run is never idle."""

    def __init__(self, app: Any, idle_s: float) -> None:
        self.app, self.idle_s = app, idle_s
        self.open = 0
        self.last = time.monotonic()
        self.used = False  # a request other than the readiness check has come
        self.server: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        self.open += 1
        self.last = time.monotonic()
        self.used = self.used or not str(scope.get("path", "")).endswith("/health")
        try:
            await self.app(scope, receive, send)
        finally:
            self.open -= 1
            self.last = time.monotonic()

    def idle(self) -> bool:
        wait = self.idle_s if self.used else max(self.idle_s, STARTUP_GRACE_S)
        return self.open == 0 and time.monotonic() - self.last > wait

    def watch(self) -> None:
        while not (self.server and self.server.should_exit):
            time.sleep(CHECK_EVERY_S)
            if self.idle() and self.server is not None:
                self.server.should_exit = True


def serve(port: int, idle_s: float) -> None:
    """Prefect's server app, as its ephemeral server runs it, behind `IdleStop`."""
    import uvicorn
    from prefect.server.api.server import create_app

    watched = IdleStop(create_app(), idle_s)
    server = uvicorn.Server(
        uvicorn.Config(watched, host="127.0.0.1", port=port, log_level="error", lifespan="on")
    )
    watched.server = server
    threading.Thread(target=watched.watch, daemon=True).start()
    server.run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The local Prefect API of mlstack's commands.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--idle-s", type=float, required=True, help="Stop after this long unused.")
    args = parser.parse_args(argv)
    serve(args.port, args.idle_s)


if __name__ == "__main__":
    main()
