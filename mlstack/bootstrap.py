"""Environment defaults that must be set before Prefect is imported, the log rules, and one fix
to Prefect's flow engine.

Prefect reads its settings once, when it is first imported, so every entry point (the CLI, each
flow module, the tests) imports this module first. Values only fill gaps: anything the user has
set in the environment, or in a `.env` file (read first), wins. The same import installs
`mlstack.logs`: no secret and no known failure's traceback reaches a log handler, and registers
`prompt_heartbeat_exit` to patch `prefect.flow_engine` when it is imported.
"""

from __future__ import annotations

import inspect
import os
import sys
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
    wrapt.register_post_import_hook(prompt_heartbeat_exit, "prefect.flow_engine")


def prompt_heartbeat_exit(flow_engine: Any) -> None:
    """A synchronous flow run no longer waits for its heartbeat thread at its end.

    Prefect 3.8's heartbeat thread (on by default, every 180 s) sleeps in steps of one second and
    looks for its stop signal between them; a sync flow run joins it as the run ends, so every
    run waited out the step under way: 0.9 s of `mlstack rag ask`'s 2.1 s (warm), whose flow
    body takes 0.08 s, and as much for each of the test suite's flow runs. The async engine
    already leaves the thread to stop on its own; so do sync runs now. It emits no heartbeat
    once told to stop, and it is a daemon, so it never holds a process open. If Prefect's
    function changes shape, nothing is patched (a test then fails)."""
    original = flow_engine._send_heartbeats
    if "join_on_exit" not in inspect.signature(original).parameters:
        return

    def send_heartbeats(engine: Any, join_on_exit: bool = True) -> Any:
        return original(engine, join_on_exit=False)

    send_heartbeats.patched = original  # type: ignore[attr-defined]
    flow_engine._send_heartbeats = send_heartbeats


apply()
