"""`mlstack new`: a project of your own for one pattern (`mlstack.scaffold`)."""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import BaseModel

from mlstack.cli.render import JSON, console, fail

app = typer.Typer()
PATTERN_OPTIONS = ("--pattern", "-p")


def bare_pattern(argv: list[str]) -> list[str]:
    """`mlstack new --pattern` with no value lists the patterns; Typer's options take no optional
    value, so the bare option is given an empty one here, before parsing."""
    if not argv or argv[0] != "new":
        return argv
    filled = list(argv)
    for at, arg in enumerate(argv):
        if arg in PATTERN_OPTIONS and (at + 1 == len(argv) or argv[at + 1].startswith("-")):
            filled.insert(at + 1, "")
            break
    return filled


class NewResult(BaseModel):
    path: str
    pattern: str
    module: str
    template_commit: str
    committed: bool


class UpdateResult(BaseModel):
    path: str
    from_commit: str
    to_commit: str
    changed: list[str]


@app.command("new")
def new(
    path: Path | None = typer.Argument(None, help="The folder to create (or, with --update, the project)."),
    pattern: str | None = typer.Option(
        None,
        *PATTERN_OPTIONS,
        help="The pattern to start from. Given without a value, lists the patterns.",
    ),
    force: bool = typer.Option(False, help="Render into a folder that exists and is not empty."),
    git: bool = typer.Option(
        True, help="Make the project a git repository with the generated files as its first commit."
    ),
    update: bool = typer.Option(
        False, "--update", help="Bring the template's later changes into the project at PATH (copier update)."
    ),
    as_json: bool = JSON,
) -> None:
    """Generate a project of your own for one pattern: its pyproject.toml, a flow with one
    parameters model and one result model, prefect.yaml, a README with its two commands
    (`make run`, `make test`), sample data and tests. It depends on mlstack and imports its
    building blocks, runs offline as it is, and records the template version it came from, so
    `mlstack new --update PATH` can later merge template changes into it.

        mlstack new my-docs-qa --pattern rag
    """
    from mlstack import scaffold
    from mlstack.settings import get_settings

    if pattern == "" or (pattern is None and path is None and not update):
        for name, what in scaffold.PATTERNS.items():
            console.print(f"{name:<10} {what}", highlight=False, soft_wrap=True)
        return
    repo = get_settings().scaffold.template_repo
    if path is None:
        raise fail("name the project's folder: mlstack new PATH --pattern PATTERN", code=2)
    if update:
        _update(path, repo, as_json)
        return
    if pattern is None:
        raise fail(f"choose a pattern: --pattern {{{','.join(scaffold.PATTERNS)}}}", code=2)
    made = scaffold.generate(path, pattern, repo, force=force, git=git)
    result = NewResult(
        path=str(made.path),
        pattern=made.pattern,
        module=made.module,
        template_commit=made.template_commit,
        committed=made.committed,
    )
    if as_json:
        console.print_json(result.model_dump_json())
        return
    say = {"highlight": False, "soft_wrap": True}
    console.print(f"created {made.path} ({made.pattern}, package {made.module})", **say)
    console.print(f"next: cd {made.path} && make test && make run", **say)


def _update(path: Path, repo: Path, as_json: bool) -> None:
    from mlstack import scaffold

    done = scaffold.update(path, repo)
    result = UpdateResult(
        path=str(done.path), from_commit=done.from_commit, to_commit=done.to_commit, changed=done.changed
    )
    if as_json:
        console.print_json(result.model_dump_json())
    elif not done.changed:
        console.print(
            f"{done.path}: already at the template's {done.to_commit[:7]}", highlight=False, soft_wrap=True
        )
    else:
        console.print(
            f"{done.path}: template {done.from_commit} -> {done.to_commit[:7]}; review and commit:",
            highlight=False,
            soft_wrap=True,
        )
        for name in done.changed:
            console.print(f"  {name}", highlight=False, soft_wrap=True)
