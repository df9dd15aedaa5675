"""What every command group prints with: the consoles, one red line for a failure, and a result
for people or, with --json, for machines. `options` builds parameters from options; `running`
holds the error boundary and runs flows."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.text import Text


def _options(stderr: bool) -> dict:
    # Off a terminal (a pipe, a log file, CI) nothing limits a line, but rich assumes 80 columns
    # and folds the paths and URLs people copy from the output; COLUMNS still sets a width.
    stream = sys.stderr if stderr else sys.stdout
    wide = stream.isatty() or "COLUMNS" in os.environ
    return {"stderr": stderr, "width": None if wide else OFF_TERMINAL_WIDTH}


OFF_TERMINAL_WIDTH = 400
console = Console(**_options(stderr=False))
err = Console(**_options(stderr=True))


def reattach() -> None:
    """Look again at what stdout and stderr are. The warm process (`mlstack.cli.warm`) imports
    this module on its own streams; the command it forks writes to its caller's."""
    for made, stderr in ((console, False), (err, True)):
        made.__init__(**_options(stderr))  # in place: every command module holds these objects


Model = TypeVar("Model", bound=BaseModel)

JSON = typer.Option(False, "--json", help="Print the result as one JSON object, for machines.")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one red line to stderr; raise the returned Exit to stop with `code`. Any configured
    secret in it is masked (a failed run's state message can quote an API's echo of a token)."""
    from mlstack.logs import known_secrets
    from mlstack.secrets import scrub

    message = scrub(message, known_secrets())
    # The message is text: `pip install -e '.[llm]'` or a path with brackets is not markup.
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def show(result: Model, render: Callable[[Model], RenderableType], as_json: bool) -> None:
    """The result as people read it, or as one JSON object with --json."""
    if as_json:
        print(result.model_dump_json())
        return
    shown = render(result)
    # A plain string is text, not markup: paths and reasons may hold brackets.
    console.print(Text(shown) if isinstance(shown, str) else shown, highlight=False)
