"""MLflow set-up: one tracking store (SQLite under the data dir by default), quiet output."""

from __future__ import annotations

import os

from mlstack.settings import MODEL_NAME, Settings, get_settings

EXPERIMENT = MODEL_NAME

# MLflow reads these at import; set them before the first `import mlflow` anywhere in the process.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


def setup(settings: Settings | None = None, experiment: str = EXPERIMENT) -> str:
    """Point MLflow at the configured store and experiment; returns the tracking URI.

    Cheap to call again, and it always re-points MLflow, so a process (or a test session) can
    move between data dirs.
    """
    import mlflow
    from mlflow.utils.logging_utils import disable_logging

    settings = settings or get_settings()
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
    disable_logging()  # no "Successfully registered model" prints
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        # Artifacts go under the data dir, not ./mlruns of whatever folder we started in.
        mlflow.create_experiment(experiment, artifact_location=(settings.mlflow_dir / "artifacts").as_uri())
    mlflow.set_experiment(experiment)
    return uri


def ui_command(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    return f"mlflow ui --backend-store-uri {settings.tracking_uri} --port 5000"
