"""The settle task each gated flow starts with, for any registered model: a version whose writer
is dead and that no gate decided is marked abandoned, and its MLflow run KILLED."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flows.tasks.registry import settle_killed_runs
from mlstack import processes, registry, tracking
from mlstack.settings import PRETRAINED_MODEL


@pytest.mark.slow
def test_settling_marks_a_dead_writers_pending_version_abandoned(prefect_harness) -> None:
    from mlflow import MlflowClient
    from prefect import flow

    tracking.setup(experiment="pretraining")
    client = MlflowClient()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    dead = processes.stamp_of(gone.pid)
    gone.wait()
    experiment = client.get_experiment_by_name("pretraining").experiment_id
    run = client.create_run(experiment, tags={tracking.OWNER_TAG: dead})
    registry.ensure_registered(PRETRAINED_MODEL)
    tags = {registry.GATE: registry.PENDING, tracking.OWNER_TAG: dead}
    version = client.create_model_version(
        PRETRAINED_MODEL, "file:///gone", run.info.run_id, tags=tags
    ).version
    tracking._settled.clear()  # as a new process

    @flow
    def gated() -> None:
        settle_killed_runs(PRETRAINED_MODEL, "pretraining")

    gated()
    assert client.get_model_version(PRETRAINED_MODEL, version).tags[registry.GATE] == registry.ABANDONED
    assert client.get_run(run.info.run_id).info.status == "KILLED"
