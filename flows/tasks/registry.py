"""The registry task every gated flow starts with: settle what a killed run of it left."""

from __future__ import annotations

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from mlstack import registry, tracking
from mlstack.settings import MODEL_NAME


@task(name="settle-killed-runs", cache_policy=NONE)
def settle_killed_runs(name: str = MODEL_NAME, experiment: str = tracking.EXPERIMENT) -> None:
    """What a killed run left behind: MLflow runs still RUNNING, a version still pending the
    gate (and holding the challenger alias), a champion change half made."""
    tracking.setup(experiment=experiment)  # which ends the MLflow runs killed processes left RUNNING
    log = get_run_logger()
    for version in registry.settle(name):
        log.warning("%s v%s was registered by a killed run and never gated: marked abandoned", name, version)
