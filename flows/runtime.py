"""Run a flow from the command line: a clean one-line error instead of a traceback on failure."""

from __future__ import annotations

from typing import Any

import typer
from prefect import Flow
from rich.console import Console

err = Console(stderr=True)


def run_flow(flow: Flow[..., Any], **parameters: Any) -> Any:
    """Call `flow` and return its result; a failed run exits 1 with the state's message."""
    state = flow(**parameters, return_state=True)
    if not state.is_completed():
        err.print(f"[bold red]{flow.name} flow {state.name.lower()}:[/] {state.message}", highlight=False)
        raise typer.Exit(1)
    return state.result()
