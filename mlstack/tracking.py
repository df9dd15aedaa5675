"""MLflow set-up: one tracking store (SQLite under the data dir by default), quiet output."""

from __future__ import annotations

import logging
import os

from mlstack.settings import MODEL_NAME, Settings, get_settings

EXPERIMENT = MODEL_NAME
log = logging.getLogger(__name__)
# Every run (and registry version) of ours names the process that writes it, so the next run can
# tell one whose writer was killed from one still being written (`mlstack.processes.owner`).
OWNER_TAG = "mlstack.owner"

# MLflow reads these at import; set them before the first `import mlflow` anywhere in the process.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


_settled: set[tuple[str, str]] = set()


def setup(settings: Settings | None = None, experiment: str = EXPERIMENT) -> str:
    """Point MLflow at the configured store and experiment; returns the tracking URI.

    Cheap to call again, and it always re-points MLflow, so a process (or a test session) can
    move between data dirs. The first call per store and experiment ends the runs that killed
    processes left RUNNING.
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
    if (uri, experiment) not in _settled:
        end_orphaned_runs(experiment)
        _settled.add((uri, experiment))
    return uri


def artifact_url(run_id: str, path: str, settings: Settings | None = None) -> str:
    """Where a browser shows a run's artifact: the MLflow UI's page for it (an HTML report renders
    there). The UI is the tracking server itself, else `mlstack up`'s on its port."""
    from mlflow import MlflowClient

    settings = settings or get_settings()
    uri = settings.tracking_uri
    base = (
        uri
        if uri.startswith(("http://", "https://"))
        else f"http://127.0.0.1:{settings.orchestration.mlflow_port}"
    )
    experiment = MlflowClient().get_run(run_id).info.experiment_id
    return f"{base.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}/artifactPath/{path}"


def owner_tags() -> dict[str, str]:
    """The tags each run starts with."""
    from mlstack.processes import owner

    return {OWNER_TAG: owner()}


def end_orphaned_runs(experiment: str = EXPERIMENT) -> list[str]:
    """Mark KILLED the runs left RUNNING by a writer that is dead; returns their ids. Runs of a live
    writer, or of another host, are left alone."""
    from mlflow import MlflowClient

    from mlstack.processes import owner_alive

    client = MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    running = client.search_runs([found.experiment_id], "attributes.status = 'RUNNING'", max_results=5000)
    dead = [r.info.run_id for r in running if not owner_alive(r.data.tags.get(OWNER_TAG, ""))]
    for run_id in dead:
        client.set_terminated(run_id, status="KILLED")
        log.warning("MLflow run %s was left RUNNING by a killed process: marked KILLED", run_id)
    return dead
