"""Progress bars for long work, on a terminal only.

rich draws one live display per process, and long work nests: the demo's stages hold
pretraining's steps, which hold nothing of their own. So the first bar opened starts the display
and every bar opened inside it adds a line to the same display, instead of failing with rich's
"Only one live display may be active at once". Off a terminal (CI, a Prefect worker, a pipe)
there is no bar at all: the logs say the same.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

_lock = threading.Lock()
_shared: Any = None  # the process's live rich Progress, while one is open


def terminal() -> bool:
    return sys.stderr.isatty()


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


class Bar:
    """One line of the display: `update(completed=..., note=...)`, `advance()`, then `close()`."""

    def __init__(self, progress: Any, task: Any, owner: bool) -> None:
        self.progress, self.task, self.owner = progress, task, owner

    def update(self, **fields: Any) -> None:
        self.progress.update(self.task, **fields)

    def advance(self, steps: float = 1, **fields: Any) -> None:
        self.progress.update(self.task, advance=steps, **fields)

    def close(self) -> None:
        global _shared
        with _lock:
            if self.owner:
                self.progress.stop()
                _shared = None
            else:
                self.progress.remove_task(self.task)


def open_bar(label: str, total: int | None, completed: int = 0, note: str = "") -> Bar | None:
    """A started bar, joined to the display already live if there is one; None off a terminal."""
    global _shared
    if not terminal():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with _lock:
        if _shared is not None:
            return Bar(
                _shared, _shared.add_task(label, total=total, completed=completed, note=note), owner=False
            )
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeRemainingColumn(),
            console=_console(),
            transient=True,
        )
        progress.start()
        _shared = progress
        return Bar(
            progress, progress.add_task(label, total=total, completed=completed, note=note), owner=True
        )
