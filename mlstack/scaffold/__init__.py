"""`mlstack new`: a project of the user's own for one pattern, rendered by copier from the
template in this package (`template/`), depending on mlstack instead of copying it.

Copier records the template's git commit in the project's `.copier-answers.yml`, and its update
is a three-way merge from that commit to the template's latest. The template ships inside the
package, not as a repository, so each run first syncs it into a git repository of its own
(MLSTACK_SCAFFOLD_TEMPLATE_REPO): a commit per template change, the same path for every
project, so an update after an mlstack upgrade finds both the old commit and the new one.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from mlstack.errors import InputError
from mlstack.io import atomic_dir

TEMPLATE = Path(__file__).parent / "template"
# The patterns the template renders, and what each starts from.
PATTERNS: dict[str, str] = {
    "tabular": "your table -> a validation contract -> Feast features -> a gated model -> scores and drift",
    "rag": "your folder of documents -> a pgvector collection -> answers with citations",
    "prompt": "your chat template -> MLflow's prompt registry -> answers checked and traced",
    "pretrain": "your code and text -> a cleaned, tokenized corpus -> a small model, evaluated and gated",
    "fine-tune": "your answered GitHub issues -> chat examples -> a LoRA adapter, scored and gated",
}
ANSWERS_FILE = ".copier-answers.yml"
# A commit needs an author; a machine with no git identity gets this one.
GIT_IDENTITY = ("-c", "user.name=mlstack", "-c", "user.email=mlstack@localhost")


@dataclass
class Generated:
    path: Path
    pattern: str
    module: str
    template_commit: str
    committed: bool  # the project is a git repository with the generated files as its first commit


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        said = done.stderr.strip() or done.stdout.strip()
        raise InputError(f"git {' '.join(args)} in {cwd} failed: {said}")
    return done.stdout.strip()


def _has_identity(cwd: Path) -> bool:
    found = subprocess.run(["git", "config", "user.email"], cwd=cwd, capture_output=True, text=True)
    return bool(found.stdout.strip())


def _commit(cwd: Path, message: str) -> None:
    """Commit everything staged, as the user's git identity or, with none configured, mlstack's."""
    identity = () if _has_identity(cwd) else GIT_IDENTITY
    _git(cwd, *identity, "commit", "-q", "-m", message)


def sync_template(repo: Path) -> str:
    """The package's template as the latest commit of `repo` (created on first use); its hash."""
    from filelock import FileLock

    if shutil.which("git") is None:
        raise InputError("mlstack new needs git (copier versions the template with it): install git")
    # Syncing replaces the folder's files: never those of a folder that is not this repository.
    if repo.is_dir() and any(repo.iterdir()) and not (repo / "copier.yml").is_file():
        raise InputError(
            f"MLSTACK_SCAFFOLD_TEMPLATE_REPO={repo} holds files that are not mlstack's template: point"
            " it at an empty or new folder"
        )
    repo.mkdir(parents=True, exist_ok=True)
    with FileLock(repo.parent / f".{repo.name}.lock"):
        if not (repo / ".git").is_dir():
            _git(repo, "init", "-q")
        for child in repo.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        shutil.copytree(TEMPLATE, repo, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        _git(repo, "add", "-A")
        if _git(repo, "status", "--porcelain"):
            _commit(repo, f"mlstack {_version()} template")
        return _git(repo, "rev-parse", "HEAD")


def _version() -> str:
    try:
        return distribution("mlstack").version
    except PackageNotFoundError:
        return "0+unknown"


def _checkout() -> tuple[str, Path] | None:
    """The file:// URL and folder mlstack was installed from, when it was a local checkout."""
    try:
        direct = json.loads(distribution("mlstack").read_text("direct_url.json") or "{}")
    except PackageNotFoundError:
        return None
    url = direct.get("url", "")
    return (url, Path(unquote(urlparse(url).path))) if url.startswith("file://") else None


def mlstack_requirement() -> str:
    """How a new project depends on mlstack: on this checkout when mlstack is installed from one
    (editable or a local path), else on this version from the package index."""
    checkout = _checkout()
    if checkout is not None:
        return f"mlstack[llm] @ {checkout[0]}"
    version = _version()
    return f"mlstack[llm]=={version}" if version != "0+unknown" else "mlstack[llm]"


def mlstack_constraints() -> str:
    """The checkout's constraints.txt (the versions mlstack is tested with), or "" without one."""
    checkout = _checkout()
    pins = checkout[1] / "constraints.txt" if checkout else None
    return str(pins) if pins is not None and pins.is_file() else ""


def module_name(project: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "_", project.lower()).strip("_")
    if not name or name[0].isdigit():
        name = f"project_{name}".rstrip("_")
    return name


def check_target(path: Path, force: bool) -> None:
    if path.exists() and not path.is_dir():
        raise InputError(f"{path} is a file: name a folder for the new project")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise InputError(
            f"{path} exists and is not empty: name a new folder, or pass --force to render into it"
            " (files the template also has are overwritten)"
        )


def generate(path: Path, pattern: str, repo: Path, *, force: bool = False, git: bool = True) -> Generated:
    """Render the template for `pattern` into `path`, recording the answers; with `git`, make the
    project a repository whose first commit is the generated files (copier's update needs one)."""
    import copier

    if pattern not in PATTERNS:
        raise InputError(f"--pattern {pattern!r} is not one of: {', '.join(PATTERNS)}")
    path = path.expanduser().resolve()
    check_target(path, force)
    commit = sync_template(repo)
    module = module_name(path.name)
    data: dict[str, Any] = {
        "project_name": path.name,
        "pattern": pattern,
        "module": module,
        "mlstack_requirement": mlstack_requirement(),
        "mlstack_constraints": mlstack_constraints(),
    }

    def render(folder: Path) -> bool:
        copier.run_copy(
            str(repo),
            folder,
            data=data,
            defaults=True,
            overwrite=force,
            quiet=True,
            vcs_ref="HEAD",
            unsafe=False,
        )
        if not git or _inside_repository(folder):
            return False
        _git(folder, "init", "-q")
        _git(folder, "add", "-A")
        _commit(folder, f"mlstack new --pattern {pattern}")
        return True

    if path.is_dir() and any(path.iterdir()):  # --force: into the folder, beside what it holds
        committed = render(path)
    else:
        # Rendered and committed beside it, then renamed into place: a killed run leaves no
        # half-made project (which a rerun would refuse), only a hidden folder the next one sweeps.
        if path.is_dir():
            path.rmdir()
        with atomic_dir(path) as staged:
            committed = render(staged)
    return Generated(path, pattern, module, commit, committed)


def _inside_repository(path: Path) -> bool:
    found = subprocess.run(["git", "rev-parse", "--git-dir"], cwd=path, capture_output=True, text=True)
    return found.returncode == 0


@dataclass
class Updated:
    path: Path
    from_commit: str
    to_commit: str
    changed: list[str]  # files the update changed or added, relative to the project


def update(path: Path, repo: Path) -> Updated:
    """Bring the template's changes since the project's recorded commit into the project (copier
    update: a three-way merge, conflicts marked inline). The project must be a clean git tree."""
    import copier
    import yaml

    path = path.expanduser().resolve()
    answers = path / ANSWERS_FILE
    if not answers.is_file():
        raise InputError(f"{answers} is missing: only a project made by `mlstack new` can be updated")
    if not _inside_repository(path):
        raise InputError(f"{path} is not a git repository: copier's update merges through git")
    if _git(path, "status", "--porcelain"):
        raise InputError(f"{path} has uncommitted changes: commit or stash them, then update")
    recorded = yaml.safe_load(answers.read_text()) or {}
    to_commit = sync_template(repo)
    copier.run_update(
        path, defaults=True, overwrite=True, quiet=True, vcs_ref="HEAD", skip_answered=True, unsafe=False
    )
    changed = _git(path, "-c", "core.quotepath=off", "diff", "--name-only", "HEAD").splitlines()
    changed += _git(path, "ls-files", "--others", "--exclude-standard").splitlines()
    return Updated(path, str(recorded.get("_commit", "")), to_commit, changed)
