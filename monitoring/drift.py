"""Drift and performance checks: a live window against the champion's training-time snapshot.

Evidently 0.7 does the statistics and draws the reports; this module decides what to compare
and turns Evidently's snapshot into plain values: a score and verdict per column, the share of
drifted columns, one dataset-drift boolean, the growth of missing values, and, once labels have
arrived, the window's error against the reference's.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, computed_field

from mlstack.errors import InputError
from mlstack.features import CATEGORICAL_FEATURES, LABEL, MODEL_FEATURES
from mlstack.io import write_json
from mlstack.settings import Settings
from monitoring.window import META_COLUMNS, PREDICTION

# Traffic, demand and so every speed feature follow the clock: a Saturday night is not a
# Tuesday rush hour. The reference is therefore redrawn to the window's calendar mix (these
# columns) before comparing, and the calendar columns themselves are not judged.
CALENDAR = ["trip_request_features__is_weekend", "trip_request_features__hour_of_day"]
SEASONAL = {*CALENDAR, "trip_request_features__weekday"}
MONITORED = [c for c in MODEL_FEATURES if c not in SEASONAL] + [PREDICTION]
# Tags that tell the window's error snapshot from the reference's, for the workspace.
WINDOW_ERRORS, REFERENCE_ERRORS = "errors:window", "errors:reference"
# The window's MAE comes from RegressionPreset (with its error distribution); the reference's MAE
# is computed without one, which gives it labels of its own on the dashboard.
WINDOW_MAE_LABELS, REFERENCE_MAE_LABELS = {"error_distr": True}, {"error_distr": False}


class WindowError(InputError):
    """The window cannot be judged; the message says why and what to do. No alert follows."""


class WindowTooSmall(WindowError):
    """Too few predictions to judge: a quiet hour, not a fault."""

    @classmethod
    def of(cls, rows: int, min_rows: int, by_others: int = 0, version: str | None = None) -> WindowTooSmall:
        others = (
            f" ({by_others} more were scored by other versions; rescore to judge v{version})"
            if by_others
            else ""
        )
        return cls(
            f"the window holds {rows} prediction(s), fewer than"
            f" MLSTACK_MONITORING_MIN_WINDOW_ROWS={min_rows};"
            f" score it first (`mlstack predict-batch`) or widen it{others}"
        )


def require_rows(frame: pd.DataFrame, min_rows: int, by_others: int = 0, version: str | None = None) -> None:
    if len(frame) < min_rows:
        raise WindowTooSmall.of(len(frame), min_rows, by_others, version)


def champion_window(window: pd.DataFrame, version: str, min_rows: int) -> tuple[pd.DataFrame, int]:
    """The predictions `version` made, and how many by other versions were left out.

    The reference, its error included, is the champion's: predictions by other versions would
    be judged against the wrong model. Raises WindowTooSmall when too few remain to judge.
    """
    others = window["model_version"].astype(str) != version
    judged = window[~others]
    require_rows(judged, min_rows, int(others.sum()), version)
    return judged, int(others.sum())


@dataclass(frozen=True)
class Thresholds:
    drift_share: float = 0.3
    method: str | None = None
    threshold: float | None = None
    performance_tolerance: float = 0.25
    missing_share_increase: float = 0.1
    min_rows: int = 200
    sample_rows: int | None = 100_000

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        m = settings.monitoring
        return cls(
            drift_share=m.drift_share,
            method=m.drift_method,
            threshold=m.drift_threshold,
            performance_tolerance=m.performance_tolerance,
            missing_share_increase=m.missing_share_increase,
            min_rows=m.min_window_rows,
            sample_rows=m.drift_sample_rows,
        )


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


class MissingShift(BaseModel):
    column: str
    reference_share: float
    current_share: float


class Performance(BaseModel):
    labelled_rows: int
    reference_mae: float
    current_mae: float
    tolerance: float

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ratio(self) -> float:
        return self.current_mae / self.reference_mae

    @computed_field  # type: ignore[prop-decorator]
    @property
    def degraded(self) -> bool:
        return self.ratio > 1 + self.tolerance


class DriftSummary(BaseModel):
    """A check in plain values: what the monitoring flow returns, alerts and events carry, and
    summary.json holds."""

    alert: bool
    dataset_drift: bool
    drifted_share: float
    drift_share_threshold: float
    monitored_columns: int
    drifted_columns: list[str]
    scores: dict[str, float | None]
    missing: list[MissingShift]
    performance: Performance | None
    reference_rows: int
    current_rows: int
    reasons: list[str]
    reports: dict[str, Path]


@dataclass
class DriftCheck:
    reference_rows: int
    current_rows: int
    columns: list[ColumnDrift]
    drifted_share: float
    drift_share: float
    dataset_drift: bool
    missing: list[MissingShift]
    performance: Performance | None
    reports: dict[str, Path] = field(default_factory=dict)
    snapshots: list[Any] = field(default_factory=list)  # Evidently's, for the workspace

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def scores(self) -> dict[str, float]:
        return {c.column: c.score for c in self.columns}

    @property
    def alert(self) -> bool:
        degraded = self.performance is not None and self.performance.degraded
        return self.dataset_drift or bool(self.missing) or degraded

    def reasons(self) -> list[str]:
        """One line per finding that raises the alert."""
        found = []
        if self.dataset_drift:
            found.append(
                f"data drift: {len(self.drifted_columns)} of {len(self.columns)} columns"
                f" ({self.drifted_share:.0%} >= {self.drift_share:.0%}): {', '.join(self.drifted_columns)}"
            )
        for m in self.missing:
            found.append(
                f"missing values in {m.column}: {m.current_share:.1%} (reference {m.reference_share:.1%})"
            )
        p = self.performance
        if p is not None and p.degraded:
            found.append(
                f"performance: MAE {p.current_mae:.1f}s vs reference {p.reference_mae:.1f}s"
                f" (x{p.ratio:.2f} > x{1 + p.tolerance:.2f}) on {p.labelled_rows} labelled trips"
            )
        return found

    def summary(self) -> DriftSummary:
        return DriftSummary(
            alert=self.alert,
            dataset_drift=self.dataset_drift,
            drifted_share=round(self.drifted_share, 4),
            drift_share_threshold=self.drift_share,
            monitored_columns=len(self.columns),
            drifted_columns=self.drifted_columns,
            scores={k: _finite(v) for k, v in self.scores.items()},
            missing=self.missing,
            performance=self.performance,
            reference_rows=self.reference_rows,
            current_rows=self.current_rows,
            reasons=self.reasons(),
            reports=self.reports,
        )


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)


def feature_columns(frame: pd.DataFrame) -> set[str]:
    return set(frame.columns) - set(META_COLUMNS) - {LABEL, "driver_id", "split"}


def split_snapshot(snapshot: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, held-out rows) of a reference snapshot; one frame serves as both when the
    snapshot is not split. Drift compares with what the model learnt from; error with the
    held-out rows, since training error flatters the model."""
    if "split" not in snapshot:
        return snapshot, snapshot
    return snapshot[snapshot["split"] == "train"], snapshot[snapshot["split"] != "train"]


def conform(reference: pd.DataFrame, current: pd.DataFrame, min_rows: int) -> None:
    """Refuse a window that cannot be compared with the reference, saying exactly why."""
    extra = sorted(feature_columns(current) - feature_columns(reference))
    lacking = sorted(set(MONITORED) - set(current.columns))
    if extra:
        raise WindowError(
            f"the current window has column(s) {', '.join(extra)} that the reference lacks: the"
            " window was scored with a different feature contract than the champion was trained on;"
            " retrain (`mlstack retrain`) or fix the feature pipeline"
        )
    if lacking:
        raise WindowError(f"the current window lacks monitored column(s) {', '.join(lacking)}")
    missing_ref = sorted(set(MONITORED) - set(reference.columns))
    if missing_ref:
        raise WindowError(f"the reference lacks monitored column(s) {', '.join(missing_ref)}")
    require_rows(current, min_rows)


def match_calendar(reference: pd.DataFrame, current: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Redraw the reference (with replacement) so its weekday/weekend and hour-of-day mix is the
    window's. A calendar slot the reference never saw is drawn from the same hour on any day."""
    rng = np.random.default_rng(seed)
    size = len(reference)
    by_slot = reference.groupby(CALENDAR).indices
    by_hour = reference.groupby(CALENDAR[1]).indices
    picks = []
    for slot, count in current.groupby(CALENDAR).size().items():
        pool = by_slot.get(slot, by_hour.get(slot[1]))
        if pool is None:
            pool = np.arange(size)
        picks.append(rng.choice(pool, size=max(1, round(count * size / len(current))), replace=True))
    return reference.iloc[np.concatenate(picks)].reset_index(drop=True)


def _definition(
    columns: list[str], regression: bool = False, categorical: Sequence[str] = CATEGORICAL_FEATURES
) -> Any:
    from evidently import DataDefinition, Regression

    return DataDefinition(
        numerical_columns=[c for c in columns if c not in categorical],
        categorical_columns=[c for c in columns if c in categorical],
        regression=[Regression(target=LABEL, prediction=PREDICTION)] if regression else None,
    )


def _datasets(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: list[str],
    regression: bool = False,
    categorical: Sequence[str] = CATEGORICAL_FEATURES,
):
    from evidently import Dataset

    definition = _definition(columns, regression, categorical)
    # One dtype on both sides: Postgres hands back floats where the snapshot kept ints.
    ref = reference[columns].astype("float64")
    cur = current[columns].astype("float64")
    return (
        Dataset.from_pandas(ref, data_definition=definition),
        Dataset.from_pandas(cur, data_definition=definition),
    )


def _sample(frame: pd.DataFrame, rows: int | None) -> pd.DataFrame:
    """A fixed-seed uniform sample above `rows`. Distances between distributions are estimated
    to a few thousandths from 100k rows, while Evidently's per-column unique counts grow worse
    than linearly (1M rows took 125 s against 7 s for 100k)."""
    if rows is None or len(frame) <= rows:
        return frame
    return frame.sample(n=rows, random_state=0)


def data_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    t: Thresholds,
    columns: list[str] = MONITORED,
    timestamp: datetime | None = None,
    tags: list[str] | None = None,
    categorical: Sequence[str] = CATEGORICAL_FEATURES,
) -> tuple[list[ColumnDrift], float, bool, Any]:
    """Evidently's DataDriftPreset over `columns` (those in `categorical` compared as
    categories), and the window's row count; returns verdicts, share, dataset flag, snapshot
    (stamped `timestamp`: the window's place in the workspace)."""
    from evidently import Report
    from evidently.metrics import RowCount
    from evidently.presets import DataDriftPreset

    ref, cur = _datasets(
        _sample(reference, t.sample_rows), _sample(current, t.sample_rows), columns, categorical=categorical
    )
    preset = DataDriftPreset(
        columns=columns, drift_share=t.drift_share, method=t.method, threshold=t.threshold
    )
    snapshot = Report([preset, RowCount()], include_tests=True).run(
        current_data=cur, reference_data=ref, timestamp=timestamp, tags=tags
    )
    result = snapshot.dict()
    # Evidently's own per-column verdicts: scores are p-values for some methods and distances
    # for others, so the direction of "drifted" is left to the library that knows which.
    failed = {
        test["metric_config"]["params"]["column"]
        for test in result["tests"]
        if test["metric_config"]["params"].get("type") == "evidently:metric_v2:ValueDrift"
        and test["status"] == "FAIL"
    }
    verdicts, share = [], 0.0
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"] == "evidently:metric_v2:ValueDrift":
            name = config["column"]
            verdicts.append(
                ColumnDrift(
                    name, config["method"], float(metric["value"]), float(config["threshold"]), name in failed
                )
            )
        elif config["type"] == "evidently:metric_v2:DriftedColumnsCount":
            share = float(metric["value"]["share"])
    return verdicts, share, share >= t.drift_share, snapshot


def missing_shifts(reference: pd.DataFrame, current: pd.DataFrame, increase: float) -> list[MissingShift]:
    ref = reference[MONITORED].isna().mean()
    cur = current[MONITORED].isna().mean()
    return [
        MissingShift(column=c, reference_share=round(float(ref[c]), 4), current_share=round(float(cur[c]), 4))
        for c in MONITORED
        if cur[c] - ref[c] > increase
    ]


def performance(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    t: Thresholds,
    timestamp: datetime | None = None,
    tags: list[str] | None = None,
) -> tuple[Performance | None, list[Any]]:
    """Error on labelled rows against the reference's error; None until enough labels arrive.
    The snapshots: Evidently's regression report of the window against the reference (tagged
    `WINDOW_ERRORS`), then the reference's own MAE (tagged `REFERENCE_ERRORS`), so that a
    dashboard draws the window's error against the line it is judged by."""
    from evidently import Report
    from evidently.metrics import MAE
    from evidently.presets import RegressionPreset
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import mean_absolute_error

    labelled = current[current[LABEL].notna() & current[PREDICTION].notna()]
    if len(labelled) < t.min_rows:
        return None, []
    ref = reference[reference[LABEL].notna()]
    result = Performance(
        labelled_rows=len(labelled),
        reference_mae=float(mean_absolute_error(ref[LABEL], ref[PREDICTION])),
        current_mae=float(mean_absolute_error(labelled[LABEL], labelled[PREDICTION])),
        tolerance=t.performance_tolerance,
    )
    ref_ds, cur_ds = _datasets(ref, labelled, [LABEL, PREDICTION], regression=True)
    with warnings.catch_warnings():
        # Evidently also scores tiny slices for its plots, where sklearn finds R² undefined.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        window = Report([RegressionPreset()], include_tests=False).run(
            current_data=cur_ds,
            reference_data=ref_ds,
            timestamp=timestamp,
            tags=[*(tags or []), WINDOW_ERRORS],
        )
        # Its own metric labels, not only its tag: Evidently's dashboard gives each point to the
        # first series whose metric and labels match and only then checks that series' tags, so
        # a reference MAE labelled like the window's was dropped from the panel.
        baseline = Report([MAE(**REFERENCE_MAE_LABELS)], include_tests=False).run(
            current_data=ref_ds, timestamp=timestamp, tags=[*(tags or []), REFERENCE_ERRORS]
        )
    return result, [window, baseline]


def check(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    thresholds: Thresholds,
    report_dir: Path | None = None,
    timestamp: datetime | None = None,
    tags: list[str] | None = None,
) -> DriftCheck:
    """Compare `current` with a reference snapshot; write HTML reports and a summary to
    `report_dir`. `timestamp` and `tags` mark Evidently's snapshots (for the workspace: the
    window's end, default now, and what the window is)."""
    conform(reference, current, thresholds.min_rows)
    trained_on, held_out = split_snapshot(reference)
    matched = match_calendar(trained_on, current)
    columns, share, dataset_drift, drift_snapshot = data_drift(
        matched, current, thresholds, timestamp=timestamp, tags=tags
    )
    perf, perf_snapshots = performance(held_out, current, thresholds, timestamp, tags)
    result = DriftCheck(
        reference_rows=len(trained_on),
        current_rows=len(current),
        columns=columns,
        drifted_share=share,
        drift_share=thresholds.drift_share,
        dataset_drift=dataset_drift,
        missing=missing_shifts(matched, current, thresholds.missing_share_increase),
        performance=perf,
        snapshots=[drift_snapshot, *perf_snapshots],
    )
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        result.reports["drift"] = report_dir / "drift.html"
        drift_snapshot.save_html(str(result.reports["drift"]))
        if perf_snapshots:
            result.reports["performance"] = report_dir / "performance.html"
            perf_snapshots[0].save_html(str(result.reports["performance"]))
        result.reports["summary"] = report_dir / "summary.json"
        write_json(result.summary().model_dump(mode="json"), result.reports["summary"])
    return result


def summary_markdown(
    result: DriftCheck, model: str, version: str, start: datetime, end: datetime, links: dict[str, str]
) -> str:
    """The check as a person reads it in the Prefect UI: verdict, findings, the columns, and each
    report as a link a browser opens (`links`, by report name) beside its path on disk."""
    summary = result.summary()
    verdict = "**drift detected**" if summary.alert else "no drift"
    perf = summary.performance
    perf_line = (
        "Labels have not arrived for enough of this window yet."
        if perf is None
        else f"MAE {perf.current_mae:.1f}s on {perf.labelled_rows} labelled trips vs reference"
        f" {perf.reference_mae:.1f}s (x{perf.ratio:.2f}, alert above x{1 + perf.tolerance:.2f})."
    )
    columns = pd.DataFrame(
        [
            (c.column, c.method, round(c.score, 4), c.threshold, "yes" if c.drifted else "")
            for c in result.columns
        ],
        columns=["column", "method", "score", "threshold", "drifted"],
    )
    reports = "\n".join(
        f"- {name}: [{path.name}]({links[name]})" + f" (`{path}`)" if name in links else f"- {name}: `{path}`"
        for name, path in summary.reports.items()
    )
    reasons = "\n".join(f"- {r}" for r in summary.reasons) or "- none"
    return (
        f"## {model} v{version}, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}: {verdict}\n\n"
        f"{summary.current_rows} predictions against {summary.reference_rows} training rows;"
        f" {len(summary.drifted_columns)} of {summary.monitored_columns} columns drifted"
        f" ({summary.drifted_share:.0%}, dataset drift at {summary.drift_share_threshold:.0%}).\n\n"
        f"**Findings:**\n{reasons}\n\n**Performance:** {perf_line}\n\n"
        f"{columns.to_markdown(index=False)}\n\n**Reports:**\n{reports}\n"
    )
