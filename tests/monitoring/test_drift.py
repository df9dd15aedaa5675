"""Drift detection as statistics: seeded worlds with real Feast features and real Evidently.

A model is trained on two weeks of baseline data. Twenty later baseline days must raise at most
one alarm (5%); covariate drift must show as data drift, concept drift as error once labels
arrive, and the missing-value surge must be stopped by validation or flagged by the check.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlstack.data.generator import generate, write_tables
from mlstack.data.validation import validate_paths
from mlstack.features import LABEL
from monitoring.drift import (
    MONITORED,
    Thresholds,
    WindowError,
    WindowTooSmall,
    champion_window,
    check,
    data_drift,
    match_calendar,
    summary_markdown,
)
from monitoring.window import PREDICTION
from tests.monitoring.worlds import BASELINE_WINDOWS, World, day, live_config


@pytest.mark.slow
def test_baseline_days_raise_at_most_one_false_alarm_in_twenty(world: World) -> None:
    results = [check(world.reference, day(world.baseline, i), Thresholds()) for i in range(BASELINE_WINDOWS)]
    alarms = [i for i, r in enumerate(results) if r.alert]
    assert len(alarms) / BASELINE_WINDOWS <= 0.05, [results[i].reasons() for i in alarms]
    # Every column is judged on every window, with Evidently's score and verdict.
    assert all({c.column for c in r.columns} == set(MONITORED) for r in results)
    assert all(r.performance is not None and not r.performance.degraded for r in results)


def test_covariate_drift_is_caught_as_data_drift(world: World) -> None:
    result = check(world.reference, day(world.covariate, 0), Thresholds())
    assert result.dataset_drift and result.alert
    assert result.drifted_share >= Thresholds().drift_share
    # The shuttle launch moves exactly what it should: longer trips, bigger groups, outer pickups.
    assert {"distance_km", "passenger_count", "pickup_zone", PREDICTION} <= set(result.drifted_columns)
    assert "dropoff_zone" not in result.drifted_columns


def test_concept_drift_is_caught_by_error_once_labels_arrive(world: World) -> None:
    window = day(world.concept, 0)
    unlabelled = check(world.reference, window.assign(**{LABEL: np.nan}), Thresholds())
    assert unlabelled.performance is None
    assert not unlabelled.dataset_drift  # same inputs: the data alone cannot see road works

    labelled = check(world.reference, window, Thresholds())
    assert labelled.performance is not None and labelled.performance.degraded and labelled.alert
    assert labelled.performance.ratio > 1.5
    assert any(r.startswith("performance") for r in labelled.reasons())


def test_missing_value_surge_is_stopped_by_validation_and_flagged_by_the_check(
    world: World, tmp_path: Path
) -> None:
    surge = generate(live_config("missing_surge", 1))
    write_tables(surge, tmp_path)
    run = validate_paths([tmp_path], 0.01)
    assert not run.ok
    assert "passenger_count" in run.summary() or any(
        "passenger_count" in (r.reason() or "") for r in run.results
    )

    # Had it slipped through, the check itself flags the null surge in the same column.
    window = day(world.baseline, 0)
    nulls = surge["trips"].set_index("trip_id")["passenger_count"].isna()
    leaked = window.assign(passenger_count=window["passenger_count"].mask(window["trip_id"].map(nulls)))
    result = check(world.reference, leaked, Thresholds())
    assert [m.column for m in result.missing] == ["passenger_count"] and result.alert
    assert result.missing[0].current_share > 0.2


def test_reports_and_plain_values(world: World, tmp_path: Path) -> None:
    result = check(world.reference, day(world.covariate, 0), Thresholds(), report_dir=tmp_path)
    assert {"drift", "performance", "summary"} <= set(result.reports)
    assert "<html" in result.reports["drift"].read_text()[:2000].lower()
    summary = json.loads(result.reports["summary"].read_text())
    assert summary["dataset_drift"] is True and summary["drifted_columns"] == result.drifted_columns
    assert set(summary["scores"]) == set(MONITORED)
    assert all(isinstance(v, float) for v in summary["scores"].values())


def test_reference_is_redrawn_to_the_windows_calendar(world: World) -> None:
    saturday = day(world.baseline, 4)  # 2026-09-19
    assert saturday["trip_request_features__is_weekend"].eq(1).all()
    matched = match_calendar(world.reference[world.reference["split"] == "train"], saturday)
    assert matched["trip_request_features__is_weekend"].eq(1).all()
    hours = saturday["trip_request_features__hour_of_day"].value_counts(normalize=True)
    drawn = matched["trip_request_features__hour_of_day"].value_counts(normalize=True)
    assert (hours - drawn.reindex(hours.index)).abs().max() < 0.01


def test_a_window_with_a_column_the_reference_lacks_is_refused(world: World) -> None:
    window = day(world.baseline, 0).assign(surge_multiplier=1.0)
    with pytest.raises(WindowError, match=r"surge_multiplier.*reference lacks"):
        check(world.reference, window, Thresholds())


def test_an_empty_window_is_skipped_not_judged(world: World) -> None:
    with pytest.raises(WindowTooSmall, match="holds 0 prediction"):
        check(world.reference, world.baseline.iloc[:0], Thresholds())


def test_no_alert_and_same_verdicts_for_a_fixed_seed(world: World) -> None:
    window = day(world.baseline, 1)
    first, second = (check(world.reference, window, Thresholds()) for _ in range(2))
    assert first.scores == second.scores and not first.alert


def test_only_the_champions_predictions_are_judged(world: World) -> None:
    window = day(world.baseline, 0).assign(model_version="1")
    mixed = pd.concat([window, window.head(40).assign(model_version="2")], ignore_index=True)
    judged, by_others = champion_window(mixed, "1", min_rows=200)
    assert by_others == 40 and len(judged) == len(window) and set(judged["model_version"]) == {"1"}
    others = rf"\({len(window)} more were scored by other versions; rescore to judge v2\)"
    with pytest.raises(WindowTooSmall, match=rf"holds 40 prediction\(s\).*{others}"):
        champion_window(mixed, "2", min_rows=200)


def test_the_summary_reads_as_markdown(world: World, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    result = check(world.reference, day(world.covariate, 0), Thresholds(), report_dir=tmp_path)
    window = datetime(2026, 9, 15, tzinfo=UTC), datetime(2026, 9, 16, tzinfo=UTC)
    drift_page = "http://127.0.0.1:5000/#/experiments/1/runs/abc/artifactPath/monitoring/v1/drift.html"
    text = summary_markdown(result, "trip_duration", "1", *window, {"drift": drift_page})
    assert text.startswith("## trip_duration v1, 2026-09-15 00:00 to 2026-09-16 00:00: **drift detected**")
    rows = [line for line in text.splitlines() if line.startswith("| distance_km")]
    assert len(rows) == 1 and rows[0].rstrip("| ").endswith("yes")
    assert f"- drift: [drift.html]({drift_page}) (`{tmp_path / 'drift.html'}`)" in text
    assert "file://" not in text and f"- summary: `{tmp_path / 'summary.json'}`" in text


def test_columns_named_categorical_are_compared_as_categories() -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"load": rng.uniform(0, 1, 2000), "site": rng.integers(0, 60, 2000)})
    current = pd.DataFrame({"load": rng.uniform(0, 1, 500), "site": rng.integers(0, 60, 500)})

    methods = {}
    for categorical in ((), ("site",)):
        verdicts, *_ = data_drift(reference, current, Thresholds(), ["load", "site"], categorical=categorical)
        methods[categorical] = {v.column: v.method for v in verdicts}

    # Sixty codes look numeric to Evidently unless declared; declared, they are compared as categories.
    assert methods[()]["site"] == methods[()]["load"] == "Wasserstein distance (normed)"
    assert methods[("site",)]["site"] == "Jensen-Shannon distance"
    assert methods[("site",)]["load"] == "Wasserstein distance (normed)"
