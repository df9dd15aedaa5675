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
