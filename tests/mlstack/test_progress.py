"""Progress bars: none off a terminal; nested bars share the one live display rich allows."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from mlstack import progress


def test_no_bar_off_a_terminal() -> None:
    assert progress.open_bar("demo", 3) is None  # pytest's stderr is not a terminal


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
