"""What every command group shares: the consoles, the error boundary, running a flow, building a
parameters model from options, and printing a result for people or, with --json, for machines.

The error boundary: a known failure (`mlstack.errors.MlstackError`) raised anywhere under a
command, in a flow's task included, ends the command with its one line on stderr and exit 1.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console, RenderableType
from rich.text import Text
from typer.core import TyperGroup

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


class Boundary(TyperGroup):
    """The root command group: it turns a known failure into one line and exit 1."""

    def invoke(self, ctx: Any) -> Any:
        from mlstack.errors import MlstackError

        try:
            return super().invoke(ctx)
        except MlstackError as exc:
            raise fail(str(exc)) from None


def option(kind: type[BaseModel], name: str, /, *flags: str, **kwargs: Any) -> Any:
    """A Typer option whose default and help are a parameters model's field: one home for both."""
    field = kind.model_fields[name]
    default = field.get_default(call_default_factory=True)
    if isinstance(default, date):
        default = default.isoformat()
    return typer.Option(default, *flags, help=field.description, **kwargs)


def build(kind: type[Model], renamed: dict[str, str] | None = None, /, **values: Any) -> Model:
    """The parameters model from the options given (any names, `model` among them); a value the
    model refuses exits 2 with one line naming the option and the rule, as a usage error does.
    `renamed` maps a field to the option that sets it where the two names differ."""
    try:
        return kind(**values)
    except ValidationError as exc:
        problems = "; ".join(_problem(error, renamed or {}) for error in exc.errors())
        raise fail(problems, code=2) from None


def _problem(error: Any, renamed: dict[str, str]) -> str:
    message = error["msg"].removeprefix("Value error, ")
    loc = [str(part) for part in error["loc"]]
    if loc:
        loc[0] = renamed.get(loc[0], loc[0])
    where = "-".join(loc[:1]).replace("_", "-")  # the option; a dict's key is in the message
    return f"--{where}: {message}" if where else message


def run_flow(flow: Flow[..., Any], *args: Any) -> Any:
    """Call the flow and return its result. A known failure inside it reaches the boundary; any
    other failed run exits 1 with the state's one-line message (Prefect has logged the rest)."""
    from mlstack.errors import MlstackError

    prefect_api()
    state = flow(*args, return_state=True)
    if not state.is_completed():
        try:
            state.result()
        except MlstackError:
            raise
        except BaseException:  # the state's message says it in one line; the log has the rest
            pass
        err.print(f"[bold red]{flow.name} flow {state.name.lower()}:[/] {state.message}", highlight=False)
        raise typer.Exit(1)
    return state.result()


def prefect_api() -> None:
    """Point this process at a Prefect API: the configured one, else the server of `mlstack up`
    (so the run shows in its UI), else a temporary server of its own. Prefect's own ephemeral
    server outlives a SIGKILLed parent (about 200 MB each); ours is started by
    `mlstack.processes`, so it dies with this process however it ends."""
    import os
    import sys
    from pathlib import Path

    import prefect
    from prefect.context import refresh_global_settings_context
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        get_current_settings,
    )

    from mlstack import processes
    from mlstack.settings import get_settings

    if PREFECT_API_URL.value():
        return
    from mlstack.deploy.stack import running_api_url

    if url := running_api_url(get_settings()):
        os.environ["PREFECT_API_URL"] = url
        refresh_global_settings_context()
        return
    # The command and environment of Prefect's own ephemeral server (SubprocessASGIServer).
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(prefect.__file__).parent.parent)]
    command += ["--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1"]
    command += ["--log-level", "error", "--lifespan", "on"]
    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        **get_current_settings().to_environment_variables(exclude_unset=True),
    }
    for attempt in range(3):  # another process may take the free port before uvicorn binds it
        url = f"http://127.0.0.1:{(port := processes.free_port())}/api"
        try:
            processes.start_service(
                [*command, "--port", str(port)],
                get_settings().home / "prefect" / "temporary-server.log",
                ready=lambda url=url: processes.answers(f"{url}/health"),
                timeout_s=PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value(),
                what="the temporary Prefect API server",
                env=env,
            )
            break
        except processes.ServiceFailed:
            if attempt == 2:
                raise
    os.environ["PREFECT_API_URL"] = url
    refresh_global_settings_context()


def show(result: Model, render: Callable[[Model], RenderableType], as_json: bool) -> None:
    """The result as people read it, or as one JSON object with --json."""
    if as_json:
        print(result.model_dump_json())
        return
    shown = render(result)
    # A plain string is text, not markup: paths and reasons may hold brackets.
    console.print(Text(shown) if isinstance(shown, str) else shown, highlight=False)
