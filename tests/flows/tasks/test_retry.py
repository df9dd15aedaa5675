"""A task retries a lost connection, and fails at once on a duplicate key or a bad input."""

from __future__ import annotations

import psycopg
import pytest
from prefect import flow, task

from flows.tasks.retry import transient_only
from mlstack.errors import InputError

attempts: list[str] = []


@task(retries=3, retry_delay_seconds=0, retry_condition_fn=transient_only)
def flaky(kind: str) -> str:
    attempts.append(kind)
    if kind == "connection" and len(attempts) < 3:
        raise psycopg.OperationalError("server closed the connection unexpectedly")
    if kind == "duplicate":
        raise psycopg.errors.UniqueViolation('duplicate key value violates "trip_predictions_pkey"')
    if kind == "input":
        raise InputError("no trips in that window")
    return "done"


@flow
def run_once(kind: str) -> str:
    return flaky(kind)


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "tries"), [("connection", 3), ("duplicate", 1), ("input", 1)])
def test_retries_only_transient_failures(prefect_harness, kind: str, tries: int) -> None:
    attempts.clear()
    state = run_once(kind, return_state=True)
    assert state.is_completed() is (kind == "connection")
    assert len(attempts) == tries


def test_every_task_that_retries_retries_transient_failures_only() -> None:
    """One rule for every retrying task of every flow: RAG's, fine-tuning's and pretraining's
    retried a 401 and a bad input."""
    import importlib
    import pkgutil

    from prefect import Task

    import flows

    retrying = {}
    for info in pkgutil.walk_packages(flows.__path__, "flows."):
        if info.name.endswith(".__main__"):  # runs its flow when imported
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, Task) and value.retries:
                retrying[f"{info.name}.{name}"] = value.retry_condition_fn
    assert {"flows.rag.read_source", "flows.rag.ingest_batch"} <= set(retrying)
    assert {name for name, rule in retrying.items() if rule is not transient_only} == set()
