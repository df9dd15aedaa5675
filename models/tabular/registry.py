"""The trip-duration model's gate: challenger and champion scored on the same held-out window,
and promotion only by a clear margin. The registry machinery it stands on (aliases, history,
promotion, rollback, the lock) is `mlstack.registry`'s; this module keeps the rule.
"""

from __future__ import annotations

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


def load(version: str, name: str = MODEL_NAME) -> Any:
    import mlflow

    return mlflow.sklearn.load_model(f"models:/{name}/{version}")


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
