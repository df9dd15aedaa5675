"""MLflow set-up: runs a killed writer left RUNNING are settled as KILLED by the next set-up,
and only those: a run whose writer still runs is left alone."""

from __future__ import annotations

import subprocess
import sys

from mlstack import processes, tracking
from mlstack.settings import get_settings


def test_the_next_setup_settles_the_runs_of_dead_writers_only() -> None:
    from mlflow import MlflowClient

    settings = get_settings()
    tracking.setup(settings, "finetune")
    client = MlflowClient()
    experiment = client.get_experiment_by_name("finetune").experiment_id
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_stamp = processes.stamp_of(gone.pid)
    gone.wait()
    killed = client.create_run(experiment, tags={tracking.OWNER_TAG: dead_stamp}).info.run_id
    live = client.create_run(experiment, tags=tracking.owner_tags()).info.run_id
    tracking._settled.clear()  # as a new process: its first set-up settles
    tracking.setup(settings, "finetune")
    assert client.get_run(killed).info.status == "KILLED"
    assert client.get_run(live).info.status == "RUNNING"
