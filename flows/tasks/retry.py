"""Retry only what can succeed on retry: the `retry_condition_fn` of every task with retries.

A lost connection, a busy lock or a serialisation conflict is retried; a bad input, a missing
champion or a bug fails at once, with its one line (see `mlstack.errors.transient`).
"""

from __future__ import annotations

from typing import Any

from mlstack.errors import transient


def transient_only(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except Exception as exc:
        return transient(exc)
    return False
