"""Environment defaults that must be set before Prefect is imported, the log rules, and one fix
to Prefect's flow engine.

Prefect reads its settings once, when it is first imported, so every entry point (the CLI, each
flow module, the tests) imports this module first. Values only fill gaps: anything the user has
set in the environment, or in a `.env` file (read first), wins. The same import installs
`mlstack.logs` (no secret and no known failure's traceback reaches a log handler) and registers
`wake_heartbeats_on_stop` to run when `prefect.flow_engine` is imported.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import wrapt

from mlstack import logs
from mlstack.errors import InputError
from mlstack.settings import get_settings, load_env_file

# The variables apply() filled in, as opposed to ones the user set: `mlstack up` honours only the
# user's own PREFECT_SERVER_DATABASE_CONNECTION_URL, not our SQLite default for temporary servers.
DEFAULTED: set[str] = set()


def apply() -> None:
    try:
        load_env_file()  # first: the file may move the data dir, which the defaults below use
    except InputError as exc:  # at import, before any command's error boundary: one line, exit 1
        sys.exit(f"error: {exc}")
    settings = get_settings()
    prefect_dir = settings.home / "prefect"
    defaults = {
        # The ephemeral server's database and task results live in the data dir, like everything
        # else a run writes. A Prefect profile or PREFECT_API_URL still takes precedence.
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{prefect_dir / 'prefect.db'}",
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(prefect_dir / "storage"),
        # Offline by default: with no network nothing is tried. Telemetry (Prefect's server and
        # SDK, MLflow's, Evidently's: all honour DO_NOT_TRACK) would only log a failed lookup,
        # and MLflow fetches its model-price catalog from github.com, three tries of about 7 s,
        # for every traced LLM call.
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_MODEL_CATALOG_URI": "",
        # A cold ephemeral server migrates a fresh SQLite database: slow on a 2-core runner.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        # MLflow draws a tqdm bar for every artifact download, even a single small file.
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    for key, value in defaults.items():
        if key not in os.environ:
            os.environ[key] = value
            DEFAULTED.add(key)
    prefect_dir.mkdir(parents=True, exist_ok=True)
    logs.install()
    wrapt.register_post_import_hook(wake_heartbeats_on_stop, "prefect.flow_engine")


def wake_heartbeats_on_stop(flow_engine: Any) -> None:
    """A flow run's heartbeat thread stops as soon as the run ends.

    Prefect 3.8 starts a heartbeat thread for every flow run (a heartbeat each 180 s by default;
    zombie detection reads them). The thread sleeps in steps of one second, looking for its stop
    signal between them, and a sync flow run joins it as it ends: every run waited out the step
    under way, 0.5 s on average and up to 1 s. That was 0.9 s of warm `mlstack rag ask`'s 1.8 s,
    whose flow body takes 0.08 s, and as much for each flow run in the test suite. This is
    Prefect's `_send_heartbeats` with one change: the thread waits on its stop signal itself, so
    the join returns at once. Heartbeats go out as before (the first as the run starts), and no
    thread outlives its run. Skipping the join instead left threads alive past their runs, which
    raced with the test harness's shutdown. If Prefect's function changes shape, nothing is
    patched (tests/mlstack/test_bootstrap.py then fails)."""
    original = flow_engine._send_heartbeats
    if list(inspect.signature(original).parameters) != ["engine", "join_on_exit"]:
        return

    @contextlib.contextmanager
    def send_heartbeats(engine: Any, join_on_exit: bool = True) -> Iterator[None]:
        seconds = engine.heartbeat_seconds
        if seconds is None:
            yield
            return
        seconds = max(seconds, flow_engine.MINIMUM_HEARTBEAT_INTERVAL)
        resource, related = engine._build_heartbeat_event_template()
        stop = threading.Event()

        def beat() -> None:
            while not stop.is_set():
                state = engine.flow_run.state if engine.flow_run else None
                if state is not None and state.is_final():
                    return
                try:
                    engine._emit_flow_run_heartbeat(resource, related)
                except Exception:
                    engine.logger.debug("Failed to emit heartbeat", exc_info=True)
                stop.wait(seconds)

        # In the caller's context, as Prefect's does: its settings hold the run's API URL.
        thread = threading.Thread(target=contextvars.copy_context().run, args=(beat,), daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            if join_on_exit:
                thread.join(timeout=2)

    send_heartbeats.patched = original  # type: ignore[attr-defined]
    flow_engine._send_heartbeats = send_heartbeats


apply()
