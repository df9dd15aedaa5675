"""The Evidently workspace: a snapshot per window, stamped with the window's end, read back."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from monitoring import workspace
from monitoring.drift import MONITORED, Thresholds, check
from tests.monitoring.worlds import LIVE_START, World, day

MODEL = "trip_duration"


def judge(world: World, path: Path, frame: pd.DataFrame, offset: int, start: datetime) -> object:
    end = start + timedelta(days=1)
    tags = workspace.window_tags("1", start, end)
    result = check(world.reference, day(frame, offset), Thresholds(), timestamp=end, tags=tags)
    # The drift report, the window's regression report, and the reference's error to compare with.
    assert len(workspace.add_window(path, MODEL, tags, result.snapshots, MONITORED)) == 3
    return result


@pytest.mark.slow
def test_each_window_is_a_point_at_its_end_and_a_rerun_replaces_it(world: World, tmp_path: Path) -> None:
    path = tmp_path / "evidently"
    day0 = datetime.combine(LIVE_START, datetime.min.time()).astimezone(pd.Timestamp(0, tz="UTC").tz)
    windows = [(world.baseline, 0, day0), (world.baseline, 1, day0 + timedelta(days=1))]
    windows.append((world.covariate, 0, day0 + timedelta(days=3)))  # its own days, later on the timeline
    results = [judge(world, path, frame, offset, start) for frame, offset, start in windows]

    points = workspace.history(path, MODEL)
    assert [p.end for p in points] == [start + timedelta(days=1) for _, _, start in windows]
    for point, result in zip(points, results, strict=True):
        # The numbers the dashboard plots are the check's own.
        assert point.drifted_share == pytest.approx(result.drifted_share)
        assert point.rows == result.current_rows
        assert point.mae == pytest.approx(result.performance.current_mae)
        assert point.reference_mae == pytest.approx(result.performance.reference_mae)
        assert point.scores == pytest.approx(result.scores)
        assert point.version == "1"
    assert points[2].drifted_share > points[0].drifted_share  # the drift shows as a jump

    ws = workspace.open_workspace(path)
    (project,) = ws.search_project(MODEL)
    titles = [panel.title for panel in ws.get_dashboard(project.id).panels]
    for title in (
        "Share of drifted columns per window",
        "Rows per window",
        "MAE of labelled predictions per",
    ):
        assert any(t.startswith(title) for t in titles), titles

    # Each panel draws what it names, read as Evidently's UI reads it: the MAE panel a line for
    # the windows and one for the reference (Evidently dropped the second until its labels
    # differed), the drift panel one point per window.
    panels = {panel.title: plotted(path, project.id, panel) for panel in ws.get_dashboard(project.id).panels}
    mae = next(series for title, series in panels.items() if title.startswith("MAE of labelled"))
    assert mae["window"] == pytest.approx([r.performance.current_mae for r in results])
    assert mae["reference"] == pytest.approx([r.performance.reference_mae for r in results])
    assert len(panels["Share of drifted columns per window"]["drifted share"]) == len(windows)

    # A rerun of the first window replaces its snapshots: still one point per window.
    judge(world, path, world.baseline, 0, day0)
    assert len(ws.list_runs(project.id)) == 9
    assert [p.end for p in workspace.history(path, MODEL)] == [p.end for p in points]


def plotted(path: Path, project_id: object, panel: object) -> dict[str, list[float]]:
    """A panel's series by legend, from the query the Evidently UI sends for it."""
    import asyncio

    from evidently.ui.service.base import SeriesFilter
    from evidently.ui.service.storage.common import NoopAuthManager
    from evidently.ui.service.storage.local import create_local_project_manager
    from evidently.ui.service.type_aliases import ZERO_UUID

    metrics = panel.values  # type: ignore[attr-defined]
    filters = [
        SeriesFilter(tags=m.tags, metadata=m.metadata, metric=m.metric, metric_labels=m.metric_labels)
        for m in metrics
    ]
    manager = create_local_project_manager(str(path), False, NoopAuthManager())
    answer = asyncio.run(manager.get_data_series(ZERO_UUID, project_id, filters, None, None))
    found: dict[str, list[float]] = {m.legend: [] for m in metrics}
    for series in answer.series:
        found[metrics[series.filter_index].legend] += [v for v in series.values if v is not None]
    return found


@pytest.mark.slow
def test_a_window_finds_its_earlier_snapshots_by_the_index_without_reading_the_others(
    world: World, tmp_path: Path
) -> None:
    """Each window used to read every stored snapshot to find its own: the 500th window read 500.
    Here the other windows' snapshots are unreadable, and adding and rerunning a window still
    works; a workspace from before the index is indexed once, by a scan."""
    path = tmp_path / "evidently"
    day0 = datetime.combine(LIVE_START, datetime.min.time()).astimezone(pd.Timestamp(0, tz="UTC").tz)
    day1 = day0 + timedelta(days=1)
    judge(world, path, world.baseline, 0, day0)
    ws = workspace.open_workspace(path)
    (project,) = ws.search_project(MODEL)
    index_path = path / str(project.id) / workspace.INDEX
    first = workspace.window_tags("1", day0, day1)[0]
    assert set(json.loads(index_path.read_text())[first]) == {str(i) for i in ws.list_runs(project.id)}

    snapshots = path / str(project.id) / "snapshots"
    kept = {p: p.read_bytes() for p in snapshots.iterdir()}
    for stored in kept:
        stored.write_text("{not a snapshot")
    judge(world, path, world.baseline, 1, day1)
    judge(world, path, world.baseline, 1, day1)  # a rerun replaces its own three
    assert len(ws.list_runs(project.id)) == 6

    for stored, content in kept.items():
        stored.write_bytes(content)
    index_path.unlink()  # as an older version left it
    judge(world, path, world.baseline, 0, day0)  # the scan finds the first window's three
    assert len(ws.list_runs(project.id)) == 6
    assert sorted(json.loads(index_path.read_text())) == sorted(
        [first, workspace.window_tags("1", day1, day1 + timedelta(days=1))[0]]
    )
