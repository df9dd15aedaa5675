"""Drift over time: every monitored window's snapshots in an Evidently workspace under the data
dir, one project per model, with a dashboard across windows.

The HTML reports answer "what happened in this window"; the workspace answers "since when":
the drifted share, each column's drift score, the window's MAE and its row count, one point
per window, stamped with the window's end. `evidently ui --workspace .mlstack/evidently` (or
`mlstack up`) opens it.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from mlstack import locks
from mlstack.io import write_json
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


INDEX = "mlstack-windows.json"  # in the project's folder: window tag -> its snapshot ids


def _state(path: Path) -> Any:
    """The workspace's files, read and written one at a time. Evidently's `Workspace(path)` parses
    every stored snapshot when it opens (its dataset manager loads the whole project), so a
    window opened with it cost more than the last: 500 stored windows, 1,500 snapshots parsed to
    add three."""
    from evidently.ui.storage.local.base import LocalState

    return LocalState(str(path))


def _project_id(path: Path, model: str, columns: list[str]) -> Any:
    state = _state(path)
    for project_id in state.list_projects() if path.is_dir() else []:
        if state.read_project(project_id).name == model:
            return project_id
    return project(open_workspace(path), model, columns).id  # the first window: an empty workspace


def _index(state: Any, project_id: Any) -> tuple[Path, dict[str, list[str]]]:
    """Which snapshots belong to which window, so that a rerun finds its own without reading the
    others; read and written under the workspace's lock. A workspace without one (made by an
    older version) is indexed once, by reading every snapshot."""
    path = Path(state.path) / str(project_id) / INDEX
    if path.is_file():
        return path, json.loads(path.read_text())
    windows: dict[str, list[str]] = {}
    for run_id in state.list_snapshots(project_id):
        run = state.read_snapshot(project_id, run_id)
        if run.tags:
            windows.setdefault(run.tags[0], []).append(str(run_id))
    return path, windows


def add_window(
    path: Path, model: str, tags: list[str], snapshots: list[Any], columns: list[str]
) -> list[str]:
    """Add a window's snapshots to the model's project; returns their ids. The snapshots carry
    the window's end as timestamp and `window_tags` (given to `drift.check`); a rerun of the same
    window replaces its earlier snapshots, so the dashboard keeps one point per window."""
    from evidently.legacy.core import new_id

    with locks.file_lock(path, timeout_s=60):  # two monitoring runs must not make two projects
        project_id = _project_id(path, model, columns)
        state = _state(path)
        index_path, windows = _index(state, project_id)
        for old in windows.pop(tags[0], []):
            with contextlib.suppress(FileNotFoundError):  # deleted in the UI meanwhile
                state.delete_snapshot(project_id, old)
        added = []
        for snapshot in snapshots:
            snapshot.set_name(" ".join([model, *tags]))
            snapshot_id = new_id()
            state.write_snapshot(project_id, snapshot_id, snapshot.to_snapshot_model())
            added.append(str(snapshot_id))
        windows[tags[0]] = added
        write_json(windows, index_path)
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
    state = _state(path)
    found = [p for p in state.list_projects() if state.read_project(p).name == model]
    if not found:
        return []
    points: dict[str, WindowPoint] = {}
    for run_id in state.list_snapshots(found[0]):
        run = state.read_snapshot(found[0], run_id)
        if not run.tags or not run.tags[0].startswith("window:"):
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
