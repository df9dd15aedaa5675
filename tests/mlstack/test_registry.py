"""The registry read back after a kill at each point of a champion change and of the gate."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from mlstack import registry, tracking
from mlstack.settings import Settings

# Runs in a child with the test's data dir. `kill_at` names the MLflow client call at which the
# child SIGKILLs itself, `when` says whether before or after that call's write lands.
CHILD = """
import os, signal, sys
from mlflow import MlflowClient
from mlstack import tracking
from mlstack import registry

action, kill_at, when, model = sys.argv[1:5]
real = getattr(MlflowClient, kill_at)
def die(self, *args, **kwargs):
    if when == "after":
        real(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
setattr(MlflowClient, kill_at, die)
tracking.setup()
if action == "promote":
    registry.promote(sys.argv[5], reason="test", name=model)
elif action == "rollback":
    registry.rollback(name=model)
elif action == "register":
    version = MlflowClient().get_model_version(model, "1")
    registry.register(version.source, version.run_id, name=model)
"""


def killed_during(action: str, kill_at: str, when: str, model: str, *args: str) -> None:
    argv = [sys.executable, "-c", CHILD, action, kill_at, when, model, *args]
    child = subprocess.run(argv, env={**os.environ}, capture_output=True)
    assert child.returncode == -9, child.stderr.decode()[-2000:]


@pytest.fixture
def two_versions(in_trained_home: Settings) -> str:
    """A model of this test's own with v1 champion and v2 registered: the trained home's model
    stays as the other tests expect it."""
    from mlflow import MlflowClient

    name = f"kill_{uuid.uuid4().hex[:8]}"
    trained = MlflowClient().get_model_version_by_alias("trip_duration", registry.CHAMPION)
    for _ in range(2):
        registry.register(trained.source, trained.run_id, name=name)
    registry.promote("1", reason="setup", name=name)
    return name


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kill_at", "when"),
    [
        ("set_registered_model_tag", "before"),
        ("set_registered_model_tag", "after"),
        ("set_registered_model_alias", "before"),
        ("set_registered_model_alias", "after"),
    ],
)
def test_a_promotion_killed_at_any_write_reads_back_whole(two_versions: str, kill_at: str, when: str) -> None:
    """Wherever the kill lands, the champion and the history agree, and rollback restores v1."""
    killed_during("promote", kill_at, when, two_versions, "2")
    status = registry.status(two_versions)
    assert status["served"][-1]["version"] == status["champion"], "history and alias agree"
    if status["champion"] == "1":  # the promotion never happened; doing it again works
        registry.promote("2", reason="again", name=two_versions)
    assert [e["version"] for e in registry.history(two_versions)] == ["1", "2"]
    assert registry.rollback(two_versions) == ("1", "2"), "rollback restores the right version"


@pytest.mark.slow
def test_a_rollback_killed_midway_leaves_the_champion_and_can_be_run_again(two_versions: str) -> None:
    registry.promote("2", reason="newer", name=two_versions)
    killed_during("rollback", "set_registered_model_alias", "before", two_versions)
    assert registry.alias_version(registry.CHAMPION, two_versions) == "2"
    assert registry.rollback(two_versions) == ("1", "2")
    assert [e["action"] for e in registry.history(two_versions)] == ["promote", "promote", "rollback"]


@pytest.mark.slow
def test_a_version_registered_by_a_killed_run_is_settled_as_abandoned(two_versions: str) -> None:
    killed_during("register", "create_model_version", "before", two_versions)  # nothing written
    killed_during("register", "set_registered_model_alias", "after", two_versions)  # v3, challenger
    assert registry.alias_version(registry.CHALLENGER, two_versions) == "3"
    versions = registry.status(two_versions)["versions"]
    assert [v["gate"] for v in versions] == ["pending", "pending", "pending"]

    assert registry.settle(two_versions) == ["3"], "v1 and v2 belong to this live test process"
    rows = {v["version"]: v for v in registry.status(two_versions)["versions"]}
    assert rows["3"]["gate"] == registry.ABANDONED and rows["1"]["gate"] == "pending"
    assert registry.alias_version(registry.CHALLENGER, two_versions) is None
    assert registry.settle(two_versions) == [], "settling twice changes nothing"


# A training run killed in the middle of its trials leaves MLflow runs RUNNING.
TRAINING = """
import os, signal
import mlflow
from mlstack import tracking
tracking.setup()
with mlflow.start_run(run_name="train", tags=tracking.owner_tags()):
    with mlflow.start_run(run_name="trial-0", nested=True, tags=tracking.owner_tags()):
        os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.slow
def test_runs_a_killed_process_left_running_are_ended_by_the_next_setup(in_trained_home: Settings) -> None:
    from mlflow import MlflowClient

    child = subprocess.run([sys.executable, "-c", TRAINING], env={**os.environ}, capture_output=True)
    assert child.returncode == -9, child.stderr.decode()[-2000:]
    client = MlflowClient()
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT).experiment_id
    left = client.search_runs([experiment], "attributes.status = 'RUNNING'")
    assert len(left) == 2

    tracking._settled.clear()  # a new process: its first setup looks for orphans
    tracking.setup(in_trained_home)
    assert {client.get_run(r.info.run_id).info.status for r in left} == {"KILLED"}
    assert client.search_runs([experiment], "attributes.status = 'RUNNING'") == []


@pytest.mark.slow
def test_an_unknown_version_is_a_clear_error(in_trained_home: Settings) -> None:
    with pytest.raises(registry.RegistryError, match="has no version 99"):
        registry.promote("99")


@pytest.mark.slow
def test_a_version_whose_run_died_after_its_promotion_is_settled_as_promoted(two_versions: str) -> None:
    """The gate's last write is its decision tag: a kill just before it leaves a pending champion."""
    killed_during("register", "set_registered_model_alias", "after", two_versions)
    registry.promote("3", reason="gate: killed before its decision tag", name=two_versions)
    assert registry.settle(two_versions) == ["3"]
    rows = {v["version"]: v for v in registry.status(two_versions)["versions"]}
    assert rows["3"]["gate"] == "promoted" and registry.alias_version(registry.CHAMPION, two_versions) == "3"
