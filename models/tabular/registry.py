"""The trip-duration model's gate: challenger and champion scored on the same held-out window,
and promotion only by a clear margin. The registry machinery it stands on (aliases, history,
promotion, rollback, the lock) is `mlstack.registry`'s; this module keeps the rule.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Any

import pandas as pd

from mlstack.registry import (
    CHAMPION,
    GATE,
    PASSED,
    GateDecision,
    alias_version,
    client,
    lock,
    promote,
    run_of,
)
from mlstack.settings import MODEL_NAME

# One load at a time in a process. MLflow's skops format reads each array's header with
# ast.literal_eval, and CPython 3.11 before 3.11.8 keeps the AST builder's recursion depth in
# interpreter-wide state (python/cpython#106905, fixed by #113035): two threads loading at once
# fail now and then with "SystemError: AST constructor recursion depth mismatch", as a window's
# partitions, each scored in its own thread, did in a CI run of the demo.
_loading = threading.Lock()
_loaded: OrderedDict[tuple[str, ...], Any] = OrderedDict()
_KEPT = 4  # versions kept loaded: a champion and a challenger, with room for the ones before


def load_uri(uri: str) -> Any:
    """An MLflow sklearn model, loaded under the process's one model-loading lock."""
    import mlflow

    with _loading:
        return mlflow.sklearn.load_model(uri)


def load(version: str, name: str = MODEL_NAME) -> Any:
    """A registry version's model, loaded once per process: the partitions of a window ask for
    the same version, each in its own thread, and share one read-only model. The key holds the
    run that made the version, as a data dir wiped and trained anew numbers its versions from 1
    again (a warm process outlives that)."""
    import mlflow

    key = (mlflow.get_registry_uri(), name, str(version), client().get_model_version(name, version).run_id)
    with _loading:
        if key not in _loaded:
            _loaded[key] = mlflow.sklearn.load_model(f"models:/{name}/{version}")
            while len(_loaded) > _KEPT:
                _loaded.popitem(last=False)
        _loaded.move_to_end(key)
        return _loaded[key]


def gate(
    version: str,
    holdout_x: pd.DataFrame,
    holdout_y: pd.Series,
    margin: float,
    name: str = MODEL_NAME,
    promote_on_win: bool = True,
    unit: str = "s",
) -> GateDecision:
    """Score challenger and champion on the same held-out window; promote only on a clear win,
    and with `promote_on_win` off (a DVC experiment), not even then: a win is recorded as
    `passed`, and promotion stays an explicit step (`mlstack model promote`). `unit` is the
    label's, for the reason's errors (the trip durations' seconds by default)."""
    with lock():
        return _gate(version, holdout_x, holdout_y, margin, name, promote_on_win, unit)


def _gate(
    version: str,
    holdout_x: pd.DataFrame,
    holdout_y: pd.Series,
    margin: float,
    name: str,
    promote_on_win: bool = True,
    unit: str = "s",
) -> GateDecision:
    from models.tabular.evaluate import metrics

    challenger_mae = metrics(holdout_y, load(version, name).predict(holdout_x)).mae
    champion = alias_version(CHAMPION, name)
    if champion is None:
        decision = GateDecision(version, None, challenger_mae, None, margin, True, "no champion yet")
    elif champion == version:
        decision = GateDecision(
            version, champion, challenger_mae, challenger_mae, margin, False, "already champion"
        )
    else:
        champion_mae = metrics(holdout_y, load(champion, name).predict(holdout_x)).mae
        bar = champion_mae * (1 - margin)
        wins = challenger_mae <= bar
        reason = (
            f"MAE {challenger_mae:.1f}{unit} vs champion v{champion} {champion_mae:.1f}{unit} "
            f"(needs <= {bar:.1f}{unit}, margin {margin:.1%})"
        )
        decision = GateDecision(version, champion, challenger_mae, champion_mae, margin, wins, reason)
    if decision.promoted and not promote_on_win:
        decision = replace(
            decision,
            promoted=False,
            passed=True,
            reason=f"{decision.reason}; passed, left as challenger: `mlstack model promote {version}`",
        )
    api = client()
    api.set_model_version_tag(name, version, "gate.reason", decision.reason)
    api.set_model_version_tag(name, version, "gate.challenger_mae", str(challenger_mae))
    if decision.promoted:
        promote(version, reason=f"gate: {decision.reason}", name=name)
    # Last: until the decision is written the version stays pending, and a kill before this
    # line leaves it to settle(); after it, the promotion above has already happened.
    verdict = "promoted" if decision.promoted else PASSED if decision.passed else "rejected"
    api.set_model_version_tag(name, version, GATE, verdict)
    return decision


def reference(version: str, name: str = MODEL_NAME) -> pd.DataFrame:
    """The training-time snapshot logged with `version` (see train.reference_snapshot)."""
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=run_of(version, name), artifact_path="reference/reference.parquet", dst_path=tmp
        )
        return pd.read_parquet(path)
