"""Drift over time: every monitored window's snapshots in an Evidently workspace under the data
dir, one project per model, with a dashboard across windows.

The HTML reports answer "what happened in this window"; the workspace answers "since when":
the drifted share, each column's drift score, the window's MAE and its row count, one point
per window, stamped with the window's end. `evidently ui --workspace .mlstack/evidently` (or
`mlstack up`) opens it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from mlstack import locks
from monitoring.drift import REFERENCE_ERRORS, REFERENCE_MAE_LABELS, WINDOW_ERRORS, WINDOW_MAE_LABELS

DASHBOARD_TAB = "Drift over time"


def _metric(name: str) -> str:
    return f"evidently:metric_v2:{name}"


def dashboard_panels(columns: list[str]) -> list[Any]:
    """The project's panels: what a person scans first, then each column's score."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import bar_plot_panel, counter_panel, line_plot_panel

    share = PanelMetric(
        legend="drifted share", metric=_metric("DriftedColumnsCount"), metric_labels={"value_type": "share"}
    )
    return [
        counter_panel("Drifted share, last window", [share], size="half", aggregation="last"),
        counter_panel(
            "Rows judged, all windows",
            [PanelMetric(legend="rows", metric=_metric("RowCount"))],
            size="half",
            aggregation="sum",  # last, sum and mean are what Evidently's UI aggregates by
        ),
        line_plot_panel("Share of drifted columns per window", [share], size="half"),
        line_plot_panel(
            "MAE of labelled predictions per window, against the reference's (seconds)",
            [
                PanelMetric(
                    legend=legend,
                    metric=_metric("MAE"),
                    metric_labels={"value_type": "mean", **{k: str(v) for k, v in labels.items()}},
                    tags=[tag],
                )
                for legend, tag, labels in (
                    ("window", WINDOW_ERRORS, WINDOW_MAE_LABELS),
                    ("reference", REFERENCE_ERRORS, REFERENCE_MAE_LABELS),
                )
            ],
            size="half",
        ),
        bar_plot_panel(
            "Rows per window", [PanelMetric(legend="rows", metric=_metric("RowCount"))], size="half"
        ),
        line_plot_panel(
            "Drift score per column (p-value or distance, by method)",
            [
                PanelMetric(legend=c, metric=_metric("ValueDrift"), metric_labels={"column": c})
                for c in columns
            ],
            size="full",
        ),
    ]


def open_workspace(path: Path) -> Any:
    from evidently.ui.workspace import Workspace

    path.mkdir(parents=True, exist_ok=True)
    return Workspace(str(path))


def project(workspace: Any, model: str, columns: list[str]) -> Any:
    """The model's project, made with its dashboard on first use."""
    found = [p for p in workspace.search_project(model)]
    if found:
        return found[0]
    made = workspace.create_project(model, description=f"Monitored windows of {model}, one snapshot each")
    for panel in dashboard_panels(columns):
        made.dashboard.add_panel(panel, tab=DASHBOARD_TAB)
    return made


def add_window(
    path: Path, model: str, tags: list[str], snapshots: list[Any], columns: list[str]
) -> list[str]:
    """Add a window's snapshots to the model's project; returns their ids. The snapshots carry
    the window's end as timestamp and `window_tags` (given to `drift.check`); a rerun of the same
    window replaces its earlier snapshots, so the dashboard keeps one point per window."""
    with locks.file_lock(path, timeout_s=60):  # two monitoring runs must not make two projects
        workspace = open_workspace(path)
        found = project(workspace, model, columns)
        for old in workspace.list_runs(found.id):
            run = workspace.get_run(found.id, old)
            if run is not None and tags[0] in run.tags:
                workspace.delete_run(found.id, old)
        added = []
        for snapshot in snapshots:
            snapshot.set_name(" ".join([model, *tags]))
            added.append(str(workspace.add_run(found.id, snapshot).id))
    return added


def window_tags(version: str, start: datetime, end: datetime) -> list[str]:
    """What a window's snapshots are tagged with: the window first (it identifies a rerun),
    then the model version that made its predictions."""
    stamp = "%Y%m%dT%H%M"
    return [f"window:{start:{stamp}}-{end:{stamp}}", f"version:{version}"]


class WindowPoint(BaseModel):
    """One window as the dashboard plots it, read back from the workspace."""

    window: str
    version: str
    end: datetime
    drifted_share: float | None = None
    rows: int | None = None
    mae: float | None = Field(default=None, description="Seconds, once labels have arrived.")
    reference_mae: float | None = Field(
        default=None, description="The reference's, which the window's is judged by."
    )
    scores: dict[str, float] = Field(default_factory=dict, description="Each column's drift score.")


class History(BaseModel):
    model: str
    windows: list[WindowPoint]


def history(path: Path, model: str) -> list[WindowPoint]:
    """Every window of the model's project, oldest first: what `mlstack monitor history` shows."""
    if not path.is_dir():
        return []
    workspace = open_workspace(path)
    found = list(workspace.search_project(model))
    if not found:
        return []
    points: dict[str, WindowPoint] = {}
    for run_id in workspace.list_runs(found[0].id):
        run = workspace.get_run(found[0].id, run_id)
        if run is None or not run.tags or not run.tags[0].startswith("window:"):
            continue
        version = next((t.removeprefix("version:") for t in run.tags if t.startswith("version:")), "")
        point = points.setdefault(
            run.tags[0], WindowPoint(window=run.tags[0], version=version, end=run.timestamp)
        )
        for result in run.metric_results.values():
            params = result.metric_value_location.metric.params
            kind = params["type"].removeprefix("evidently:metric_v2:")
            if kind == "DriftedColumnsCount":
                point.drifted_share = float(result.share.value)
            elif kind == "RowCount":
                point.rows = int(result.value)
            elif kind == "MAE" and REFERENCE_ERRORS in run.tags:
                point.reference_mae = float(result.mean.value)
            elif kind == "MAE":
                point.mae = float(result.mean.value)
            elif kind == "ValueDrift":
                point.scores[params["column"]] = float(result.value)
    return sorted(points.values(), key=lambda p: p.end)
