from __future__ import annotations

import openai._base_client
import pytest


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The openai client's back-off sleeps, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(openai._base_client.time, "sleep", recorded.append)
    return recorded
