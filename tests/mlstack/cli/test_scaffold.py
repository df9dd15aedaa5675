"""`mlstack new`: the bare `--pattern` lists the patterns (through the real executable, where
the bare option is filled in), a project is made and reported, an update is reported, and a
folder that is taken is one red line and exit 1. What the template renders is tested in
tests/mlstack/scaffold/test_template.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sysconfig
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlstack import scaffold
from mlstack.cli.root import app
from mlstack.cli.scaffold import bare_pattern

MLSTACK = str(Path(sysconfig.get_path("scripts")) / "mlstack")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "template-repo"
    monkeypatch.setenv("MLSTACK_SCAFFOLD_TEMPLATE_REPO", str(path))
    return path


def test_a_bare_pattern_option_lists_the_patterns() -> None:
    done = subprocess.run([MLSTACK, "new", "--pattern"], capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    listed = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    assert listed == list(scaffold.PATTERNS)


def test_only_a_bare_pattern_option_is_filled_in() -> None:
    assert bare_pattern(["new", "x", "--pattern"]) == ["new", "x", "--pattern", ""]
    assert bare_pattern(["new", "-p", "--force", "x"]) == ["new", "-p", "", "--force", "x"]
    assert bare_pattern(["new", "x", "--pattern", "rag"]) == ["new", "x", "--pattern", "rag"]
    assert bare_pattern(["rag", "ask", "--pattern"]) == ["rag", "ask", "--pattern"]


def test_new_makes_the_project_and_says_what_to_run_next(tmp_path: Path, repo: Path) -> None:
    result = CliRunner().invoke(app, ["new", str(tmp_path / "qa"), "--pattern", "rag", "--json"])

    assert result.exit_code == 0, result.output
    made = json.loads(result.output)
    assert (made["path"], made["pattern"], made["module"], made["committed"]) == (
        str(tmp_path / "qa"),
        "rag",
        "qa",
        True,
    )
    assert (Path(made["path"]) / "qa" / "flow.py").is_file()
    assert (repo / ".git").is_dir()

    again = CliRunner().invoke(app, ["new", str(tmp_path / "qa"), "--pattern", "rag"])
    assert again.exit_code == 1
    assert "exists and is not empty" in again.output and "--force" in again.output

    update = CliRunner().invoke(app, ["new", str(tmp_path / "qa"), "--update"])
    assert update.exit_code == 0, update.output
    assert "already at the template's" in update.output


def test_new_without_a_pattern_names_the_choices_and_exits_2(tmp_path: Path, repo: Path) -> None:
    result = CliRunner().invoke(app, ["new", str(tmp_path / "qa")])

    assert result.exit_code == 2
    assert "--pattern {tabular,rag,prompt,pretrain,fine-tune}" in result.output
    assert not (tmp_path / "qa").exists()


def test_a_killed_new_leaves_no_half_made_project_and_the_rerun_makes_it(tmp_path: Path, repo: Path) -> None:
    target = tmp_path / "projects" / "qa"
    target.parent.mkdir()
    argv = [MLSTACK, "new", str(target), "--pattern", "rag"]
    env = {**os.environ, "MLSTACK_SCAFFOLD_TEMPLATE_REPO": str(repo)}
    killed = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # killed as soon as its staging folder holds a file: mid-render, before the rename
    deadline = time.monotonic() + 60
    while not any(p.is_file() for d in target.parent.glob(".qa~*") for p in d.rglob("*")):
        assert killed.poll() is None and time.monotonic() < deadline, "it finished before it was caught"
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.wait()

    assert not target.exists(), "a killed run leaves no project a rerun would refuse"
    assert list(target.parent.glob(".qa~*")), "its staging folder is left behind"

    rerun = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)

    assert rerun.returncode == 0, rerun.stderr
    assert (target / scaffold.ANSWERS_FILE).is_file() and (target / "qa" / "flow.py").is_file()
    assert [p.name for p in target.parent.iterdir()] == ["qa"], "the killed run's folder is swept"
