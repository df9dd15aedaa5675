"""Batch scoring maps one task per day; on Dask it runs unchanged and gives the same predictions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flows.batch_inference import BatchParams, batch_inference_flow
from flows.tasks.runners import task_runner
from mlstack.settings import Settings, get_settings

WINDOW = {"start": datetime(2026, 9, 3, tzinfo=UTC), "end": datetime(2026, 9, 6, tzinfo=UTC)}


def _completed(state):
    assert state.is_completed(), state.message
    return state.result()


@pytest.mark.slow
def test_the_mapped_partitions_run_on_a_dask_cluster_and_match_threads(
    prefect_harness, in_trained_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd
    from distributed import LocalCluster

    threads = _completed(batch_inference_flow(BatchParams(**WINDOW), return_state=True))
    on_threads = pd.read_parquet(threads.parquet).sort_values("trip_id", ignore_index=True)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        monkeypatch.setenv("MLSTACK_ORCHESTRATION_TASK_RUNNER", "dask")
        monkeypatch.setenv("MLSTACK_ORCHESTRATION_DASK_ADDRESS", cluster.scheduler_address)
        on_dask_flow = batch_inference_flow.with_options(task_runner=task_runner(get_settings()))
        dask = _completed(on_dask_flow(BatchParams(**WINDOW), return_state=True))
        scored_there = cluster.scheduler.task_prefixes.get("score_partition")
        assert scored_there is not None, sorted(cluster.scheduler.task_prefixes)
        assert sum(scored_there.state_counts.values()) >= 3  # one task a day, three days
    on_dask = pd.read_parquet(dask.parquet).sort_values("trip_id", ignore_index=True)
    assert dask.rows == threads.rows > 0
    pd.testing.assert_frame_equal(on_dask, on_threads)


def test_the_runner_follows_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    assert isinstance(task_runner(get_settings()), ThreadPoolTaskRunner)
    monkeypatch.setenv("MLSTACK_ORCHESTRATION_TASK_RUNNER", "dask")
    monkeypatch.setenv("MLSTACK_ORCHESTRATION_DASK_WORKERS", "3")
    local = task_runner(get_settings())
    assert isinstance(local, DaskTaskRunner) and local.cluster_kwargs["n_workers"] == 3
    monkeypatch.setenv("MLSTACK_ORCHESTRATION_DASK_ADDRESS", "tcp://10.0.0.1:8786")
    assert task_runner(get_settings()).address == "tcp://10.0.0.1:8786"
