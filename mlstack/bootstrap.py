"""Environment defaults that must be set before Prefect is imported, and the log rules.

Prefect reads its settings once, when it is first imported, so every entry point (the CLI, each
flow module, the tests) imports this module first. Values only fill gaps: anything the user has
set in the environment, or in a `.env` file (read first), wins. The same import installs
`mlstack.logs`: no secret and no known failure's traceback reaches a log handler.
"""

from __future__ import annotations

import os
import sys

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


apply()
