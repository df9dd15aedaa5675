"""The error boundary and running a flow: a known failure (`mlstack.errors.MlstackError`) raised
anywhere under a command, in a flow's task included, ends the command with its one line on
stderr and exit 1, as does a module of an extra that is not installed (`mlstack.extras`).
Anything else is a bug and keeps its traceback."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from typer.core import TyperGroup

from mlstack.cli.render import fail

if TYPE_CHECKING:
    from prefect import Flow


class Boundary(TyperGroup):
    """The root command group: it turns a known failure into one line and exit 1."""

    def invoke(self, ctx: Any) -> Any:
        from mlstack import extras
        from mlstack.errors import MlstackError

        try:
            return super().invoke(ctx)
        except MlstackError as exc:
            raise fail(str(exc)) from None
        except ModuleNotFoundError as exc:
            if (line := extras.missing(exc)) is None:
                raise
            raise fail(line) from None


def run_flow(flow: Flow[..., Any], *args: Any) -> Any:
    """Call the flow and return its result. A known failure inside it reaches the boundary; any
    other failed run exits 1 with the state's one-line message (Prefect has logged the rest)."""
    from mlstack import extras
    from mlstack.deploy import api
    from mlstack.errors import MlstackError

    api.ensure_api()
    state = flow(*args, return_state=True)
    _keep_warm(flow)
    if not state.is_completed():
        try:
            state.result()
        except MlstackError:
            raise
        except ModuleNotFoundError as exc:
            if extras.missing(exc):  # the boundary says which extra to install
                raise
        except BaseException:  # the state's message says it in one line; the log has the rest
            pass
        raise fail(f"{flow.name} flow {state.name.lower()}: {state.message}")
    return state.result()


def _keep_warm(flow: Flow[..., Any]) -> None:
    """Start the warm process for the next flow command from this environment, in the background
    (`mlstack.cli.warm`), when this one paid for its own imports."""
    from mlstack.cli import warm
    from mlstack.settings import get_settings

    settings = get_settings()
    if warm.ORIGIN is not None and settings.orchestration.warm:
        try:
            warm.start(warm.ORIGIN, flow.fn.__module__, settings)
        except Exception as exc:  # a speed-up for the next command, never this command's failure
            logging.getLogger(__name__).debug("no warm process started: %s", exc)
