"""`mlstack train`, `evaluate` and `model`: their results render; a bad value is one line."""

from __future__ import annotations

from typer.testing import CliRunner

from mlstack.cli import app
from mlstack.cli.training import render_evaluation, render_status, render_training
from models.tabular.evaluate import Metrics
from tests.conftest import rendered


def test_training_renders(training_result) -> None:
    assert render_training(training_result) == (
        "v1: validation MAE 298.4s, test MAE 301.2s; promoted to champion (no champion yet)"
    )
    kept = training_result.model_copy(update={"promoted": False, "reason": "MAE 310.0s vs champion v1"})
    assert render_training(kept).endswith("not promoted (MAE 310.0s vs champion v1)")


def test_evaluation_renders() -> None:
    assert render_evaluation(Metrics(mae=301.25, rmse=412.5, r2=0.8123), 4567) == (
        "test MAE 301.2s, RMSE 412.5s, R² 0.812 on 4,567 trips"
    )


def test_registry_status_renders() -> None:
    status = {
        "champion": "2",
        "challenger": "2",
        "versions": [
            {"version": "1", "created": "2026-11-21T10:00:00+00:00", "gate": "promoted", "mae": "301.2"},
            {"version": "2", "created": "2026-11-21T11:00:00+00:00", "gate": "promoted", "mae": "280.0"},
        ],
        "served": [
            {
                "version": "1",
                "from": "2026-11-21T10:00:05.1Z",
                "until": "2026-11-21T11:00:05.2Z",
                "how": "promote",
            },
            {"version": "2", "from": "2026-11-21T11:00:05.2Z", "until": None, "how": "promote"},
        ],
    }
    text = rendered(render_status(status))
    assert "2 champion, challenger 2026-11-21T11:00:00+00:00 promoted 280.0" in text
    newest = {"start": "2026-09-12T00:00:00", "end": "2026-09-14T23:59:00", "rows": 4000}
    window = rendered(render_status({**status, "newest_window": {**newest, "mae": {"1": 340.5, "2": None}}}))
    assert "MAE 2026-09-12 to 2026-09-14 (s)" in window
    assert "1 2026-11-21T10:00:00+00:00 promoted 301.2 340.5" in window
    assert "2 champion, challenger 2026-11-21T11:00:00+00:00 promoted 280.0 -" in window
    assert "the last column scores every version on the newest one (4,000 trips)" in window
    assert "1 2026-11-21T10:00:05 2026-11-21T11:00:05 promote" in text
    assert "2 2026-11-21T11:00:05 now promote" in text


def test_trials_below_one_are_refused_with_one_line() -> None:
    result = CliRunner().invoke(app, ["train", "--trials", "0"])
    assert result.exit_code == 2
    assert "--n-trials: Input should be greater than or equal to 1" in " ".join(result.output.split())


def test_status_on_an_empty_registry_says_to_train_first() -> None:
    from typer.testing import CliRunner

    from mlstack.cli import app

    for args in (["model", "status"], ["model", "status", "--json"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1, result.output
        assert "no registered model yet. Run `mlstack train` first." in " ".join(result.stderr.split())
