"""Where a flow's mapped tasks run: threads in the flow's process (the default), or Dask, on a
local cluster or on an existing scheduler (MLSTACK_ORCHESTRATION_TASK_RUNNER,
MLSTACK_ORCHESTRATION_DASK_ADDRESS). A mapped task runs on either unchanged: `task.map(parts)` is
the same call."""

from __future__ import annotations

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from mlstack.settings import Settings, get_settings


def task_runner(settings: Settings | None = None) -> TaskRunner:
    orchestration = (settings or get_settings()).orchestration
    if orchestration.task_runner == "threads":
        return ThreadPoolTaskRunner()
    from prefect_dask import DaskTaskRunner

    if orchestration.dask_address:
        return DaskTaskRunner(address=orchestration.dask_address)
    workers = {"n_workers": orchestration.dask_workers} if orchestration.dask_workers else {}
    return DaskTaskRunner(cluster_kwargs={"processes": True, **workers})
