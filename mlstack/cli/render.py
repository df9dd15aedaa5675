"""What every command group prints with: the consoles, one red line for a failure, and a result
for people or, with --json, for machines. `options` builds parameters from options; `running`
holds the error boundary and runs flows."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console, RenderableType
from rich.text import Text

console = Console()
err = Console(stderr=True)

Model = TypeVar("Model", bound=BaseModel)

JSON = typer.Option(False, "--json", help="Print the result as one JSON object, for machines.")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one red line to stderr; raise the returned Exit to stop with `code`."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def show(result: Model, render: Callable[[Model], RenderableType], as_json: bool) -> None:
    """The result as people read it, or as one JSON object with --json."""
    if as_json:
        print(result.model_dump_json())
        return
    shown = render(result)
    # A plain string is text, not markup: paths and reasons may hold brackets.
    console.print(Text(shown) if isinstance(shown, str) else shown, highlight=False)
