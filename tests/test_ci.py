"""The workflows and the worker images are linted in the suite, and each linter is shown to fail
on a broken file: a check that cannot fail checks nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

WORKFLOWS = sorted((PROJECT_ROOT / ".github" / "workflows").glob("*.yml"))
DOCKERFILES = sorted((PROJECT_ROOT / "docker").glob("*.Dockerfile"))


def tool(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    path = str(found) if found.exists() else shutil.which(name)
    assert path, f"{name} is missing: `make test` installs it with the dev extras"
    return path


def lint(command: list[str], cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120)


def test_the_workflows_pass_actionlint() -> None:
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "cd.yml"}
    done = lint([tool("actionlint"), "-no-color", *map(str, WORKFLOWS)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_fails_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  test:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.no_such_context }}\n      - uses: actions/checkout\n"
    )
    done = lint([tool("actionlint"), "-no-color", str(broken)], cwd=tmp_path)
    assert done.returncode == 1
    assert "no_such_context" in done.stdout and "actions/checkout" in done.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_the_worker_images_pass_hadolint(dockerfile: Path) -> None:
    done = lint([tool("hadolint"), "--no-color", str(dockerfile)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_both_worker_images_exist_and_install_from_the_constraints() -> None:
    assert [path.name for path in DOCKERFILES] == ["cpu.Dockerfile", "cuda.Dockerfile"]
    for path in DOCKERFILES:
        text = path.read_text()
        assert "-c constraints.txt" in text and "PYTHONPATH=/opt/mlstack" in text
        assert "pip install -e" not in text and "pip install ." not in text


def test_hadolint_fails_a_broken_dockerfile(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python:latest\nRUN cd /tmp && pip install requests\n")
    done = lint([tool("hadolint"), "--no-color", str(broken)], cwd=tmp_path)
    assert done.returncode == 1
    assert "DL3007" in done.stdout and "DL3003" in done.stdout


def workflow(name: str) -> dict:
    import yaml

    parsed = yaml.safe_load((PROJECT_ROOT / ".github" / "workflows" / name).read_text())
    parsed["on"] = parsed.pop(True, parsed.get("on"))  # YAML 1.1 reads the key `on` as true
    return parsed


def test_every_job_has_a_timeout_and_ci_splits_its_work() -> None:
    for name in ("ci.yml", "cd.yml"):
        jobs = workflow(name)["jobs"]
        assert [job for job, body in jobs.items() if not body.get("timeout-minutes")] == [], name
    ci = workflow("ci.yml")["jobs"]
    assert {"lint", "fast", "end-to-end", "pipeline"} <= set(ci)
    assert ci["end-to-end"]["strategy"]["matrix"]["shard"] == [1, 2]


def test_the_venv_is_cached_on_the_files_that_decide_it() -> None:
    import yaml

    action = yaml.safe_load((PROJECT_ROOT / ".github" / "actions" / "setup" / "action.yml").read_text())
    cache = next(step for step in action["runs"]["steps"] if step.get("uses", "").startswith("actions/cache"))
    assert cache["with"]["path"] == ".venv"
    assert "hashFiles('pyproject.toml', 'constraints.txt')" in cache["with"]["key"]
    for name in ("ci.yml", "cd.yml"):
        for job, body in workflow(name)["jobs"].items():
            uses = [step.get("uses") for step in body["steps"]]
            assert "./.github/actions/setup" in uses or "docker/build-push-action@v6" in uses, (name, job)


def test_deploy_runs_only_after_ci_passed_on_that_commit() -> None:
    cd = workflow("cd.yml")
    assert cd["on"]["workflow_run"] == {"workflows": ["ci"], "types": ["completed"], "branches": ["main"]}
    assert "branches" not in cd["on"].get("push", {}), "a push to main must not deploy before ci"
    deploy = cd["jobs"]["deploy"]
    assert "github.event.workflow_run.conclusion == 'success'" in deploy["if"]
    checkout = deploy["steps"][0]
    assert checkout["with"]["ref"] == "${{ github.event.workflow_run.head_sha }}"
