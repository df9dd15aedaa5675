"""Progress bars for long work, on a terminal only.

rich draws one live display per process, and long work nests: the demo's stages hold
pretraining's steps, which hold nothing of their own. So the first bar opened starts the display
and every bar opened inside it adds a line to the same display, instead of failing with rich's
"Only one live display may be active at once". Off a terminal (CI, a Prefect worker, a pipe, the
Prefect UI's log) the same bar is a log line at most every `LOG_EVERY_S`: step, note (the loss),
time spent and time left, so no long stage is silent.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

_lock = threading.Lock()
_shared: Any = None  # the process's live rich Progress, while one is open
# Often enough that a stage never looks stuck, rarely enough that a run's log stays readable: a
# 25-minute stage writes about 50 lines.
LOG_EVERY_S = 30.0


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


class LogBar:
    """A bar off a terminal: the same calls, written as log lines through Prefect's run logger (so
    they reach the UI) or, outside a run, the `mlstack` logger."""

    def __init__(self, label: str, total: int | None, completed: int, note: str, eta: bool = True) -> None:
        self.label, self.total, self.completed, self.note, self.eta = label, total, completed, note, eta
        self.first = completed
        self.started = self.logged = time.monotonic()

    def update(self, completed: float | None = None, note: str | None = None, **_: Any) -> None:
        if completed is not None:
            self.completed = int(completed)
        if note is not None:
            self.note = note
        if time.monotonic() - self.logged >= LOG_EVERY_S:
            self.log()

    def advance(self, steps: float = 1, **fields: Any) -> None:
        self.update(completed=self.completed + steps, **fields)

    def close(self) -> None:
        pass

    def log(self) -> None:
        self.logged = now = time.monotonic()
        spent = now - self.started
        line = f"{self.label}: {self.completed}" + (f"/{self.total}" if self.total else "")
        line += f", {self.note}" if self.note else ""
        line += f", {duration(spent)} spent"
        done = self.completed - self.first
        if self.eta and self.total and done > 0:
            line += f", about {duration(spent / done * (self.total - self.completed))} left"
        _logger().info(line)


def duration(seconds: float) -> str:
    """3m05s, 42s."""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _logger() -> Any:
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("mlstack")


def open_bar(
    label: str, total: int | None, completed: int = 0, note: str = "", eta: bool = True
) -> Bar | LogBar:
    """A started bar, joined to the display already live if there is one; off a terminal, a bar
    that logs. `eta=False` where the steps differ too much in length for a fair estimate."""
    global _shared
    if not terminal():
        return LogBar(label, total, completed, note, eta)
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
