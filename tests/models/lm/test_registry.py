"""The language models' gates: a version is born pending with its writer's stamp, the gate's
decision is its last write, and a version whose run was killed before that is settled as
abandoned, its MLflow run as KILLED, as the trip-duration model's are."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mlstack import registry as shared
from mlstack import tracking
from mlstack.settings import FINETUNED_MODEL
from models.lm import registry

# A fine-tune that registered its version and was killed before the gate decided.
KILLED = """
import os, signal
import mlflow
from mlstack import tracking
from models.lm import registry
tracking.setup(experiment="finetune")
with mlflow.start_run(tags=tracking.owner_tags()) as run:
    registry.register_finetuned(run.info.run_id, run.info.artifact_uri + "/model", {"backend": "local"})
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_a_fine_tuned_version_whose_run_was_killed_before_its_gate_is_settled() -> None:
    import mlflow
    from mlflow import MlflowClient

    child = subprocess.run([sys.executable, "-c", KILLED], env={**os.environ}, capture_output=True)
    assert child.returncode == -9, child.stderr.decode()[-2000:]
    tracking._settled.clear()  # as a new process: its first set-up settles
    tracking.setup(experiment="finetune")
    client = MlflowClient()
    left = client.get_model_version(FINETUNED_MODEL, "1")
    assert left.tags[shared.GATE] == shared.PENDING
    assert client.get_run(left.run_id).info.status == "KILLED"
    assert shared.settle(FINETUNED_MODEL) == ["1"]
    assert client.get_model_version(FINETUNED_MODEL, "1").tags[shared.GATE] == shared.ABANDONED

    with mlflow.start_run(tags=tracking.owner_tags()) as run:
        version = registry.register_finetuned(run.info.run_id, run.info.artifact_uri + "/model", {})
    decision = registry.gate_finetuned(
        version, registry.ChatScore(rouge_l=0.5, loss=1.0), registry.ChatScore(rouge_l=0.4, loss=2.0), None
    )
    assert (
        decision.promoted
        and client.get_model_version(FINETUNED_MODEL, version).tags[shared.GATE] == "promoted"
    )
    assert shared.settle(FINETUNED_MODEL) == []  # decided: nothing to settle
