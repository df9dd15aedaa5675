"""The retraining flow refuses to run without a champion, saying what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.retraining import retraining_flow


@pytest.mark.slow
def test_retraining_without_a_champion_fails_with_what_to_do(prefect_harness, mlstack_home: Path) -> None:
    state = retraining_flow(return_state=True)
    assert state.is_failed() and "mlstack train" in state.message
