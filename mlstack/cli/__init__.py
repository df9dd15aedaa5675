"""The `mlstack` command line: one module per command group, a root holding `info` and `demo`,
and `render` for what they share. `main` is the executable (`python -m mlstack.cli` runs it too);
`app`, the typer application, is imported on first use, so that `main` can hand a command to the
warm process before anything heavy is imported."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlstack.cli.root import app

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from mlstack.cli.root import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
