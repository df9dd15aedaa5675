"""The `mlstack` command line: one module per command group, a root holding `info` and `demo`,
and `render` for what they share. `python -m mlstack.cli` runs it too."""

from __future__ import annotations

from mlstack.cli.root import app

__all__ = ["app"]
