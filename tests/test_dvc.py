"""`dvc repro` in a temporary clone builds everything on the pipeline's own data dir, touches
nothing of the live stack's, reproduces its metrics, and a second run does nothing; the committed
dvc.lock belongs to the code beside it."""

from __future__ import annotations

import hashlib
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
    live = tmp_path / "home"  # the live stack's data dir, as a user's shell points at it
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLSTACK_HOME": str(live),
        "MLFLOW_TRACKING_URI": f"sqlite:///{live / 'mlflow' / 'mlflow.db'}",
    }

    first = dvc(repo, "repro", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    for stage in ("generate", "validate", "features", "train", "evaluate"):
        assert f"Running stage '{stage}'" in first.stdout
    for table in ("trips", "driver_stats", "zone_stats"):
        assert (repo / "data" / "validated" / f"{table}.parquet").is_file()
    metrics = json.loads((repo / "data" / "metrics" / "validation.json").read_text())
    assert metrics["ok"] is True and metrics["failed_tables"] == 0 and metrics["quarantined_rows"] > 0
    assert (repo / "dvc.lock").is_file()
    assert (repo / "data" / "model" / "MLmodel").is_file()
    trained = json.loads((repo / "data" / "metrics" / "train.json").read_text())
    assert set(trained) == {"val_mae", "test_mae"} and trained["test_mae"] > 0
    evaluation = json.loads((repo / "data" / "metrics" / "metrics.json").read_text())
    assert evaluation["test"]["r2"] > 0.5 and evaluation["rows"] > 0
    assert evaluation["test"]["mae"] == trained["test_mae"]  # one model, one test window
    assert (repo / "data" / "plots" / "error_by_hour.csv").read_text().startswith("hour,mae_s")
    # The pipeline ran on its own data dir: the live one, and its settings, were never touched.
    assert not live.exists()
    pipeline = repo / "data" / ".mlstack"
    assert (pipeline / "feast" / "registry.db").is_file() and (pipeline / "mlflow" / "mlflow.db").is_file()

    second = dvc(repo, "repro", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Running stage" not in second.stdout
    assert "Data and pipelines are up to date." in second.stdout

    # Forced to train again on the same inputs, it writes the same scores.
    again = dvc(repo, "repro", "--force", "--single-item", "train", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads((repo / "data" / "metrics" / "train.json").read_text()) == trained

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

    # A temporary experiment with a changed parameter: it takes effect, in a workspace of its own
    # (no data/.mlstack there: the train stage applies the Feast store itself), and the live
    # data dir is still untouched.
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"], cwd=repo, check=True
    )
    experiment = dvc(repo, "exp", "run", "--temp", "-S", "train.n_trials=2", env=env)
    assert experiment.returncode == 0, experiment.stdout + experiment.stderr
    assert (
        "Running stage 'train'" in experiment.stdout and "Running stage 'generate'" not in experiment.stdout
    )
    table = dvc(repo, "exp", "show", "--json", env=env)
    assert table.returncode == 0, table.stderr
    assert "val_mae" in table.stdout and "test_mae" in table.stdout
    assert not live.exists()

    # A team shares the cache through a remote: a teammate's clone pulls what this one pushed
    # and has nothing to rebuild.
    remote = tmp_path / "team-remote"
    assert dvc(repo, "remote", "add", "--local", "-d", "team", str(remote), env=env).returncode == 0
    pushed = dvc(repo, "push", env=env)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    teammate = tmp_path / "teammate"
    subprocess.run(["git", "clone", "-q", str(repo), str(teammate)], check=True)
    assert dvc(teammate, "remote", "add", "--local", "-d", "team", str(remote), env=env).returncode == 0
    pulled = dvc(teammate, "pull", env=env)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert (teammate / "data" / "model" / "MLmodel").is_file()
    status = dvc(teammate, "status", env=env)
    assert "Data and pipelines are up to date." in status.stdout, status.stdout


def test_the_committed_lock_belongs_to_the_code_and_params_beside_it() -> None:
    """dvc.lock records each stage's command, the md5 of each file it depends on and its params.
    When the code moves on without a `make repro`, a clone's `dvc status` calls every stage
    changed and the committed metrics no longer describe this code."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    lock = yaml.safe_load((PROJECT_ROOT / "dvc.lock").read_text())["stages"]
    params = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    stale = []
    with Repo(str(PROJECT_ROOT)) as repo:
        for stage in repo.index.stages:
            locked = lock.get(stage.name, {})
            if locked.get("cmd") != stage.cmd:
                stale.append(f"{stage.name}: its command changed")
            recorded = {dep["path"]: dep.get("md5") for dep in locked.get("deps", [])}
            for dep in stage.deps:
                if isinstance(dep, ParamsDependency):  # its values are checked below
                    continue
                path = PROJECT_ROOT / str(dep.def_path)
                if dep.def_path not in recorded:
                    stale.append(f"{stage.name}: {dep.def_path} is not in the lock")
                elif path.is_file() and hashlib.md5(path.read_bytes()).hexdigest() != recorded[dep.def_path]:
                    stale.append(f"{stage.name}: {dep.def_path} changed")
            for key, value in locked.get("params", {}).get("params.yaml", {}).items():
                current: object = params
                for part in key.split("."):
                    current = current.get(part) if isinstance(current, dict) else None
                if current != value:
                    stale.append(f"{stage.name}: param {key} changed")
    assert stale == [], "run `make repro` and commit dvc.lock, data/metrics and data/plots"
