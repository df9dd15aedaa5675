"""The `mlstack` executable. A flow command goes to the warm process for this environment when
one runs (`mlstack.cli.warm`); everything else, and every command when none runs, is parsed
and run here. Only the standard library is imported before that choice."""

from __future__ import annotations

import sys


def main() -> None:
    from mlstack.cli import warm

    origin = warm.remember_origin()
    if len(sys.argv) > 1 and (code := warm.forward(sys.argv[1:], origin)) is not None:
        sys.exit(code)
    from mlstack.cli.root import app
    from mlstack.cli.scaffold import bare_pattern

    app(args=bare_pattern(sys.argv[1:]))
