"""Which Prefect API a command's flows reach: the user's, else `mlstack up`'s while it runs. (The
data dir's local API, its reuse, its idle stop and `down`, are in tests/mlstack/cli/test_running.py,
through real `mlstack` processes.)"""

from __future__ import annotations

import subprocess
import sys

from mlstack import processes
from mlstack.settings import get_settings
from tests.mlstack.deploy.test_stack import write


def test_commands_use_the_server_of_up_while_it_runs(tmp_path) -> None:
    """The record of a live `up` server points every command at it (here, a stand-in process)."""
    from tests.kill import command_env

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        write("prefect", child.pid, processes.stamp_of(child.pid))
        env = command_env(get_settings().home)
        script = (
            "import os; from mlstack.deploy.api import ensure_api;"
            " ensure_api(); print(os.environ['PREFECT_API_URL'])"
        )
        shown = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
        )
        assert shown.stdout.strip() == "http://127.0.0.1:1/api", shown.stderr[-2000:]
        # A user's own PREFECT_API_URL still wins.
        env["PREFECT_API_URL"] = "http://elsewhere:4200/api"
        shown = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
        )
        assert shown.stdout.strip() == "http://elsewhere:4200/api"
    finally:
        child.kill()


def test_the_local_api_is_idle_only_with_nothing_open_for_the_idle_time(monkeypatch) -> None:
    """A flow run holds the events websocket for as long as it runs: open is never idle."""
    import asyncio

    from mlstack.deploy import api

    now = [100.0]
    monkeypatch.setattr(api.time, "monotonic", lambda: now[0])
    inside = asyncio.Event()
    release = asyncio.Event()

    async def app(scope, receive, send) -> None:
        inside.set()
        await release.wait()

    watched = api.IdleStop(app, idle_s=10)

    async def scenario() -> list[bool]:
        seen = []
        held = asyncio.create_task(watched({"type": "websocket"}, None, None))
        await inside.wait()
        now[0] += 60
        seen.append(watched.idle())  # open for a minute: busy
        release.set()
        await held
        seen.append(watched.idle())  # just closed
        now[0] += 11
        seen.append(watched.idle())  # closed for longer than the idle time
        await watched({"type": "lifespan"}, None, None)  # not a request: no activity
        seen.append(watched.idle())
        return seen

    assert asyncio.run(scenario()) == [False, False, True, True]


def test_the_local_api_waits_for_the_command_that_started_it_before_idling(monkeypatch) -> None:
    """Its readiness check is not a use: until a real request comes, idle takes the start grace."""
    import asyncio

    from mlstack.deploy import api

    now = [100.0]
    monkeypatch.setattr(api.time, "monotonic", lambda: now[0])

    async def app(scope, receive, send) -> None:
        pass

    watched = api.IdleStop(app, idle_s=5)

    async def scenario() -> list[bool]:
        seen = []
        await watched({"type": "http", "path": "/api/health"}, None, None)  # the start's check
        now[0] += 6
        seen.append(watched.idle())  # past idle_s, but the command has not come yet
        now[0] += api.STARTUP_GRACE_S
        seen.append(watched.idle())  # it never came
        await watched({"type": "http", "path": "/api/admin/version"}, None, None)  # the client
        now[0] += 6
        seen.append(watched.idle())  # used, then unused for longer than idle_s
        return seen

    assert asyncio.run(scenario()) == [False, True, True]
