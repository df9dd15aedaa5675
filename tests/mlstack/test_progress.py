"""Progress bars: log lines off a terminal; nested bars share the one live display rich allows."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from mlstack import progress


def test_off_a_terminal_a_bar_logs_its_step_note_and_time_left(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = iter([100.0, 110.0, 160.0, 160.0, 200.0, 200.0])  # opened, each update, each line
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(progress, "LOG_EVERY_S", 30.0)
    bar = progress.open_bar("pretraining", 300, completed=100)  # pytest's stderr is not a terminal
    assert isinstance(bar, progress.LogBar)
    with caplog.at_level("INFO", logger="mlstack"):
        bar.update(completed=110, note="loss 4.000")  # 10 s after the start: too soon for a line
        bar.update(completed=150, note="loss 3.500")  # 60 s: 50 steps in 60 s, 150 to go
        bar.advance(note="loss 3.400")  # 40 s after the last line: another one
    assert [r.getMessage() for r in caplog.records] == [
        "pretraining: 150/300, loss 3.500, 1m00s spent, about 3m00s left",
        "pretraining: 151/300, loss 3.400, 1m40s spent, about 4m52s left",
    ]


def test_a_bar_opened_inside_another_joins_its_display(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(progress, "terminal", lambda: True)
    monkeypatch.setattr(progress, "_console", lambda: Console(file=screen, force_terminal=True, width=100))
    outer = progress.open_bar("demo", 3)
    assert outer is not None and outer.owner
    inner = progress.open_bar("pretraining", 50, note="loss 4.000")  # rich would refuse a second display
    assert inner is not None and not inner.owner and inner.progress is outer.progress
    inner.update(completed=25, note="loss 2.000")
    assert [t.description for t in outer.progress.tasks] == ["demo", "pretraining"]
    assert outer.progress.tasks[1].completed == 25 and outer.progress.tasks[1].fields["note"] == "loss 2.000"
    inner.close()
    assert [t.description for t in outer.progress.tasks] == ["demo"] and outer.progress.live.is_started
    outer.advance(note="features")
    outer.close()
    assert not outer.progress.live.is_started
    # Closed, the next bar starts a display of its own.
    again = progress.open_bar("next", 1)
    assert again is not None and again.owner and again.progress is not outer.progress
    again.close()
