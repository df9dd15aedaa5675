"""`dvc repro` in a temporary clone builds everything, and a second run does nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT


def clone(dest: Path) -> Path:
    """Copy what a clone would hold (files git tracks or would track), as a git repo of its own."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        source = PROJECT_ROOT / name
        if source.is_file() and name != "dvc.lock":  # a local lock would make the first run a no-op
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def dvc(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    return subprocess.run(
        [str(bin_dir / "dvc"), *args], cwd=cwd, env=env, text=True, capture_output=True, timeout=600
    )


@pytest.mark.slow
@pytest.mark.pipeline
@pytest.mark.timeout(1200)
def test_dvc_repro_builds_then_is_a_no_op(tmp_path: Path) -> None:
    repo = clone(tmp_path / "clone")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["generate"].update({"days": 3, "trips-per-day": 500, "drivers": 30})  # small, same stages
    params["train"]["n_trials"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLSTACK_HOME": str(tmp_path / "home"),
    }

    first = dvc(repo, "repro", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    for stage in ("generate", "validate", "features", "train", "evaluate"):
        assert f"Running stage '{stage}'" in first.stdout
    for table in ("trips", "driver_stats", "zone_stats"):
        assert (repo / "data" / "validated" / f"{table}.parquet").is_file()
    metrics = json.loads((repo / "data" / "metrics" / "validation.json").read_text())
    assert metrics["ok"] is True and metrics["failed_tables"] == 0
    assert metrics["tables"]["trips"]["quarantined_rows"] > 0
    assert (repo / "dvc.lock").is_file()
    assert (repo / "data" / "model" / "MLmodel").is_file()
    trained = json.loads((repo / "data" / "metrics" / "train.json").read_text())
    # The stage registers a challenger and never promotes, even with no champion to beat.
    assert trained["version"] == "1" and not trained["promoted"] and trained["passed"]
    evaluation = json.loads((repo / "data" / "metrics" / "metrics.json").read_text())
    assert evaluation["test"]["r2"] > 0.5 and evaluation["rows"] > 0
    assert (repo / "data" / "plots" / "error_by_hour.csv").read_text().startswith("hour,mae_s")

    second = dvc(repo, "repro", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Running stage" not in second.stdout
    assert "Data and pipelines are up to date." in second.stdout

    # A changed parameter reruns exactly the stages that depend on it.
    params["validate"]["max-bad-row-share"] = 0.02
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    third = dvc(repo, "repro", env=env)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "Running stage 'validate'" in third.stdout and "Running stage 'generate'" not in third.stdout
    # Validation kept the same rows, so nothing downstream of it reran either.
    assert "Running stage 'train'" not in third.stdout

    shown = dvc(repo, "metrics", "show", "--json", env=env)
    assert shown.returncode == 0 and "failed_tables" in shown.stdout

    # A temporary experiment with a changed parameter: it takes effect, and the champion stays.
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"], cwd=repo, check=True
    )
    promoted = subprocess.run(
        [str(Path(sys.executable).parent / "mlstack"), "model", "promote", "1"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    assert promoted.returncode == 0, promoted.stderr
    experiment = dvc(repo, "exp", "run", "--temp", "-S", "train.n_trials=2", env=env)
    assert experiment.returncode == 0, experiment.stdout + experiment.stderr
    assert (
        "Running stage 'train'" in experiment.stdout and "Running stage 'generate'" not in experiment.stdout
    )

    from mlflow import MlflowClient

    store = f"sqlite:///{tmp_path / 'home' / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)  # not this process's registry
    v2 = client.get_model_version("trip_duration", "2")
    trials = client.search_runs(
        [client.get_run(v2.run_id).info.experiment_id], f"tags.mlflow.parentRunId = '{v2.run_id}'"
    )
    assert len(trials) == 2, "the experiment's -S train.n_trials=2 reached the training"
    assert str(client.get_model_version_by_alias("trip_duration", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("trip_duration", "challenger").version) == "2"
    assert v2.tags["gate.decision"] in ("passed", "rejected")
