"""What every command group shares: the consoles, one-line errors, running a flow, building a
parameters model from options, and printing a result for people or, with --json, for machines."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console, RenderableType
from rich.text import Text

if TYPE_CHECKING:
    from prefect import Flow

console = Console()
err = Console(stderr=True)

Model = TypeVar("Model", bound=BaseModel)

JSON = typer.Option(False, "--json", help="Print the result as one JSON object, for machines.")


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one red line to stderr; raise the returned Exit to stop with `code`."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def option(kind: type[BaseModel], name: str, /, *flags: str, **kwargs: Any) -> Any:
    """A Typer option whose default and help are a parameters model's field: one home for both."""
    field = kind.model_fields[name]
    default = field.get_default(call_default_factory=True)
    if isinstance(default, date):
        default = default.isoformat()
    return typer.Option(default, *flags, help=field.description, **kwargs)


def build(kind: type[Model], /, **values: Any) -> Model:
    """The parameters model from the options given (any names, `model` among them); a value the
    model refuses exits 2 with one line naming the option and the rule, as a usage error does."""
    try:
        return kind(**values)
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise fail(problems, code=2) from None


def _problem(error: Any) -> str:
    message = error["msg"].removeprefix("Value error, ")
    where = "-".join(str(part) for part in error["loc"]).replace("_", "-")
    return f"--{where}: {message}" if where else message


def run_flow(flow: Flow[..., Any], *args: Any) -> Any:
    """Call the flow and return its result; a failed run exits 1 with the state's one-line message."""
    state = flow(*args, return_state=True)
    if not state.is_completed():
        err.print(f"[bold red]{flow.name} flow {state.name.lower()}:[/] {state.message}", highlight=False)
        raise typer.Exit(1)
    return state.result()


def show(result: Model, render: Callable[[Model], RenderableType], as_json: bool) -> None:
    """The result as people read it, or as one JSON object with --json."""
    if as_json:
        print(result.model_dump_json())
        return
    shown = render(result)
    # A plain string is text, not markup: paths and reasons may hold brackets.
    console.print(Text(shown) if isinstance(shown, str) else shown, highlight=False)
