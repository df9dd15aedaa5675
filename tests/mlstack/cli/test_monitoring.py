"""`mlstack monitor` and `drift-history`: each outcome renders."""

from __future__ import annotations

from mlstack.cli.monitoring import render_monitoring
from tests.conftest import rendered


def test_a_drifting_window_renders_findings_alerts_and_retraining(drifting_window) -> None:
    text = rendered(render_monitoring(drifting_window))
    assert text.startswith("v1: drift detected - data drift: 6 of 16 columns - performance:")
    assert "drift: /tmp/reports/drift.html" in text
    assert "alert to /tmp/alerts.jsonl: sent" in text
    assert "alert to json://127.0.0.1:9/...: failed (refused)" in text
    assert (
        "retrained v2: MAE 280.0s vs champion v1 400.0s on 2026-09-19 00:00 to 2026-09-20 00:00: promoted"
        in text
    )


def test_quiet_skipped_and_failed_retraining_render(quiet_window, drifting_window) -> None:
    assert rendered(render_monitoring(quiet_window)).startswith("v1: no drift")
    skipped = quiet_window.model_copy(
        update={"status": "skipped", "drift": None, "skipped_because": "0 rows"}
    )
    assert rendered(render_monitoring(skipped)) == "window skipped: 0 rows"
    failed = drifting_window.model_copy(update={"retraining": None, "retraining_failed": "no champion"})
    assert rendered(render_monitoring(failed)).endswith("retraining failed: no champion")


def test_drift_history_on_a_fresh_data_dir_says_what_to_run() -> None:
    from typer.testing import CliRunner

    from mlstack.cli import app

    shown = CliRunner().invoke(app, ["drift-history"])
    assert shown.exit_code == 0 and "no monitored window yet: run `mlstack monitor`" in shown.output
    assert CliRunner().invoke(app, ["drift-history", "--json"]).stdout.strip() == (
        '{"model":"trip_duration","windows":[]}'
    )


def test_drift_history_renders_a_row_per_window() -> None:
    from datetime import UTC, datetime

    from mlstack.cli.monitoring import render_history
    from monitoring.workspace import History, WindowPoint

    point = WindowPoint(
        window="window:x", version="2", end=datetime(2026, 9, 12, tzinfo=UTC), drifted_share=0.53, rows=2400
    )
    labelled = point.model_copy(update={"mae": 412.34, "reference_mae": 160.0})
    text = rendered(render_history(History(model="trip_duration", windows=[point, labelled])))
    assert "2026-09-12 00:00 v2 53% 2400" in text and "412.3 160.0" in text
