"""`mlstack new`'s template: what it renders for each pattern, what it refuses, how a later
template change reaches a project that has moved on (copier update), and a generated project
installed into a venv of its own, passing its own tests and running its flow offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from mlstack import scaffold
from mlstack.errors import InputError


@pytest.fixture
def template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the package's template that a test may change, and the repository it syncs into."""
    copy = Path(shutil.copytree(scaffold.TEMPLATE, tmp_path / "template"))
    monkeypatch.setattr(scaffold, "TEMPLATE", copy)
    return copy


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("pattern", sorted(scaffold.PATTERNS))
def test_a_pattern_renders_a_project_that_depends_on_mlstack_and_records_its_answers(
    pattern: str, tmp_path: Path
) -> None:
    made = scaffold.generate(tmp_path / "Team QA-bot", pattern, tmp_path / "repo")

    root = made.path
    assert made.module == "team_qa_bot"
    config = tomllib.loads((root / "pyproject.toml").read_text())
    assert config["project"]["name"] == "Team QA-bot"
    assert [d for d in config["project"]["dependencies"] if d.startswith("mlstack")] == [
        scaffold.mlstack_requirement()
    ]
    for name in ("README.md", "Makefile", "prefect.yaml", ".gitignore", "team_qa_bot/flow.py"):
        assert (root / name).is_file(), name
    answers = (root / scaffold.ANSWERS_FILE).read_text()
    assert f"pattern: {pattern}" in answers
    assert made.template_commit.startswith(answers.split("_commit: ")[1].split()[0].strip("'"))
    # the flow imports mlstack's blocks rather than carrying copies of them
    flow = (root / "team_qa_bot" / "flow.py").read_text()
    assert "from flows." in flow or "from mlstack" in flow
    # nothing of another pattern is rendered, and no template syntax is left
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            assert "{{" not in path.name and "{%" not in path.name, path
    assert made.committed
    assert git(root, "status", "--porcelain") == ""
    assert git(root, "log", "--format=%s").strip() == f"mlstack new --pattern {pattern}"


@pytest.mark.parametrize("pattern", sorted(scaffold.PATTERNS))
def test_the_rendered_project_passes_ruff(pattern: str, tmp_path: Path) -> None:
    made = scaffold.generate(tmp_path / "lint-me", pattern, tmp_path / "repo")
    ruff = Path(sysconfig.get_path("scripts")) / "ruff"

    for check in (["check", "."], ["format", "--check", "."]):
        done = subprocess.run([str(ruff), *check], cwd=made.path, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_folder_with_files_is_refused_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.mkdir()
    (target / "notes.txt").write_text("mine")

    with pytest.raises(InputError, match=r"taken exists and is not empty.*--force"):
        scaffold.generate(target, "rag", tmp_path / "repo")
    assert [p.name for p in target.iterdir()] == ["notes.txt"]

    made = scaffold.generate(target, "rag", tmp_path / "repo", force=True)
    assert (made.path / "notes.txt").read_text() == "mine"
    assert (made.path / "pyproject.toml").is_file()


def test_an_unknown_pattern_is_refused_naming_the_patterns(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="'tabulr' is not one of: tabular, rag, prompt, pretrain, fine-tune"):
        scaffold.generate(tmp_path / "x", "tabulr", tmp_path / "repo")
    assert not (tmp_path / "x").exists()


def test_the_template_repository_commits_only_when_the_template_changed(
    template: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    first = scaffold.sync_template(repo)
    assert scaffold.sync_template(repo) == first
    (template / "README.md.jinja").write_text("# {{ project_name }}\n")
    assert scaffold.sync_template(repo) != first
    assert len(git(repo, "log", "--format=%H").split()) == 2


def test_a_template_repository_setting_that_names_someone_elses_folder_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "notes"
    theirs.mkdir()
    (theirs / "todo.txt").write_text("mine")

    with pytest.raises(InputError, match="holds files that are not mlstack's template"):
        scaffold.sync_template(theirs)
    assert [p.name for p in theirs.iterdir()] == ["todo.txt"]


def test_an_update_brings_a_template_change_and_keeps_the_projects_own(
    template: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    made = scaffold.generate(tmp_path / "mine", "rag", repo)
    refunds = made.path / "docs" / "refunds.md"
    refunds.write_text(refunds.read_text() + "\nOur own rule: refunds over 500 need a manager.\n")
    git(made.path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "our docs")
    readme = template / "README.md.jinja"
    readme.write_text(readme.read_text() + "\n## Support\n\nAsk in #{{ module }}-help.\n")

    done = scaffold.update(made.path, repo)

    assert made.template_commit.startswith(done.from_commit)  # the commit recorded at generation
    assert not done.to_commit.startswith(done.from_commit)
    assert "Ask in #mine-help." in (made.path / "README.md").read_text()
    assert "Our own rule: refunds over 500 need a manager." in refunds.read_text()
    assert sorted(done.changed) == [".copier-answers.yml", "README.md"]


def test_an_update_refuses_a_dirty_tree_and_a_folder_not_made_by_it(template: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    made = scaffold.generate(tmp_path / "mine", "rag", repo)
    (made.path / "README.md").write_text("edited, not committed\n")

    with pytest.raises(InputError, match="uncommitted changes: commit or stash them"):
        scaffold.update(made.path, repo)
    (tmp_path / "other").mkdir()
    with pytest.raises(InputError, match=r"\.copier-answers\.yml is missing"):
        scaffold.update(tmp_path / "other", repo)


def project_python(project: Path, where: Path) -> Path:
    """A venv of the project's own that sees this environment's packages (mlstack and its
    dependencies, through a .pth that adds this site-packages as a site dir, editable installs
    included) and gets the project itself installed, editable, with nothing downloaded."""
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = (venv / "lib").glob("python*/site-packages")
    parent = sysconfig.get_path("purelib")
    (site / "_parent_env.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--no-build-isolation", "--no-index", "-e", str(project)],
        check=True,
    )  # fmt: skip
    return python


def clean_env(venv_python: Path) -> dict[str, str]:
    """This machine's environment without the suite's mlstack, Prefect and MLflow settings: the
    generated project finds its own."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("MLSTACK_", "PREFECT_", "MLFLOW_"))}
    return {**keep, "PATH": f"{venv_python.parent}{os.pathsep}{os.environ['PATH']}"}


# What each pattern's generated project is run with, and what its result must show.
RUNS = {
    "tabular": ([], 4),
    "rag": (["How long does a pickup point keep a parcel?"], 4),
    "prompt": ([], 3),
    "pretrain": (["20"], 3),
    "fine-tune": (["10"], 2),
}


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("pattern", sorted(scaffold.PATTERNS))
def test_a_generated_project_installs_passes_its_own_tests_and_runs_offline(
    pattern: str, tmp_path: Path
) -> None:
    from mlstack.postgres import stop_embedded
    from mlstack.settings import Settings

    made = scaffold.generate(tmp_path / "our-project", pattern, tmp_path / "repo")
    python = project_python(made.path, tmp_path)
    env = clean_env(python)
    args, tests_passed = RUNS[pattern]

    # A basetemp of its own: pytest's default tightens /tmp/pytest-of-<user> to 0o700 when it
    # starts, which shuts the embedded Postgres of this suite's other workers out of their folders.
    tests = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "pytest")],
        cwd=made.path, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-3000:]
    assert f"{tests_passed} passed" in tests.stdout

    home = tmp_path / "home"
    try:
        ran = subprocess.run(
            [str(python), "-m", "our_project.flow", *args],
            cwd=made.path, env={**env, "MLSTACK_HOME": str(home)}, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
    finally:
        stop_embedded(Settings(home=home).pg_dir)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    result = json.loads(ran.stdout[ran.stdout.index("{") :])
    if pattern == "tabular":
        assert result["version"] == "1" and result["promoted"] and result["champion"] == "1"
        assert result["quarantined"] > 0 and result["scored"] > 0 and result["drifted"] == []
        assert Path(result["predictions"]).is_relative_to(home)
    elif pattern == "rag":
        assert result["documents"] == 4
        assert Path(result["citations"][0]).name == "delivery-options.md"
    elif pattern == "prompt":
        assert result["prompt"] == "prompts:/our_project/1" and len(result["answers"]) == 4
    elif pattern == "pretrain":
        assert result["version"] == "1" and result["promoted"] and result["steps"] == 20
    else:
        assert result["pretrained_base"] and result["version"] == "1" and result["pairs"] > 0
