"""`mlstack retrain`: each outcome renders."""

from __future__ import annotations

from mlstack.cli.retraining import retraining_line


def test_retraining_renders(retraining_result) -> None:
    kept = retraining_result.model_copy(update={"promoted": False, "champion_mae": None, "reason": "r"})
    assert retraining_line(kept).endswith(
        "vs champion v1 n/a on 2026-09-19 00:00 to 2026-09-20 00:00: champion kept (r)"
    )
