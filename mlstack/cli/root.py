"""The `mlstack` command: `info` here, and every command group registered below.

Each group is a module of this package; heavy libraries are imported inside the commands, so
`mlstack --help` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlstack.cli import (
    batch_inference,
    data,
    demo,
    deploy,
    features,
    fine_tuning,
    monitoring,
    pretraining,
    prompt_engineering,
    rag,
    retraining,
    scaffold,
    serving,
    training,
    webhooks,
)
from mlstack.cli.render import JSON, console, fail, show
from mlstack.cli.running import Boundary

if TYPE_CHECKING:
    from mlstack.services import InfoResult

app = typer.Typer(
    name="mlstack",
    cls=Boundary,
    help="mlstack: a Prefect-native reference stack for AI and ML, runnable offline.\n\n"
    "Start with `mlstack demo`, then `mlstack info` to see where everything lives.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            console.print(f"mlstack {version('mlstack')}", highlight=False)
        except PackageNotFoundError:  # run from a checkout that was never installed
            console.print("mlstack (not installed: run `make test` or `pip install -e .`)", highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """mlstack: a Prefect-native reference stack for AI and ML, runnable offline."""


app.add_typer(data.app, name="data")
app.add_typer(features.app, name="features")
app.add_typer(rag.app, name="rag")
app.add_typer(pretraining.app, name="pretrain")
app.add_typer(fine_tuning.app, name="finetune")
for group in (
    demo,
    training,
    batch_inference,
    monitoring,
    retraining,
    prompt_engineering,
    serving,
    webhooks,
    deploy,
    scaffold,
):
    app.add_typer(group.app)


@app.command()
def info(as_json: bool = JSON) -> None:
    """Show the resolved settings, section by section, and each backing service. A service the
    settings point at (MLSTACK_PG_DSN, MLFLOW_TRACKING_URI, PREFECT_API_URL, OPENAI_BASE_URL or
    OPENAI_API_KEY) is asked whether it answers, and the command exits 1 when one does not;
    an unset one is shown as unset, with the embedded default that stands in."""
    from mlstack.services import info as read_info
    from mlstack.settings import get_settings

    result = read_info(get_settings())
    show(result, render_info, as_json)
    if not result.ok:
        down = ", ".join(row.service for row in result.services if row.ok is False)
        raise fail(f"configured but not answering: {down}; fix the setting or start the service")


def render_info(result: InfoResult) -> RenderableType:
    table = Table("section", "setting", "value", "from", title="Settings")
    for row in result.settings:
        table.add_row(row.section, row.name, row.value, row.source)
    status = Table("service", "mode", "status", title="Services")
    marks = {True: "[green]ok[/] ", False: "[bold red]down[/] ", None: ""}
    for service in result.services:
        status.add_row(service.service, service.mode, Text.from_markup(marks[service.ok]) + service.status)
    return Group(table, status)
