"""The demo: the classic ML loop end to end, on embedded services, in one flow run.

Each stage is a subflow, so the Prefect UI shows the demo as one tree: generate and validate
data, build and materialize features, tune and train a model tracked in MLflow, register it and
gate it against the champion, score the last days in batch, and answer one online request
through the real serving app. Then time moves on: a normal day arrives and is scored and
monitored (no alert), then three days of covariate drift arrive (an airport shuttle launches),
and monitoring alerts, emits its event and retrains, and the gate decides on a new champion.
Last, the prompt-engineering pattern asks one question of the local model through its
OpenAI-compatible endpoint (an untrained stand-in until a model is pretrained: its words are
random, but the prompt registry, the trace, the checks and the endpoint are all real).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import flow, get_run_logger
from prefect.states import State

from flows.batch_inference import batch_inference_flow
from flows.data import data_flow
from flows.features import features_flow
from flows.monitoring import monitoring_flow
from flows.prompt_engineering import prompt_engineering_flow
from flows.training import training_flow
from mlstack import tracking
from mlstack.settings import get_settings

DEMO_START = date(2026, 9, 1)
DEMO_QUESTION = "How do I drop duplicate rows from a DataFrame?"


def online_prediction(at: datetime) -> dict[str, Any]:
    """One request through the real FastAPI app (lifespan, Feast, champion), in process."""
    from fastapi.testclient import TestClient

    from models.serving.app import create_app

    request = {
        "driver_id": 17,
        "pickup_zone": 3,
        "dropoff_zone": 12,
        "distance_km": 6.4,
        "passenger_count": 1,
        "requested_at": at.isoformat(),
    }
    with TestClient(create_app()) as client:
        response = client.post("/predict", json=request)
        response.raise_for_status()
        return {"request": request, "response": response.json()}


@flow(name="demo")
def demo_flow(days: int = 14, trials: int | None = None) -> dict[str, Any] | State:
    """Run each stage in turn; stop at the first that fails, with its reason."""
    log = get_run_logger()
    end = datetime.combine(DEMO_START + timedelta(days=days), datetime.min.time(), tzinfo=UTC)
    stages = [
        ("data", lambda: data_flow(start=DEMO_START, days=days, return_state=True)),
        ("features", lambda: features_flow(return_state=True)),
        ("training", lambda: training_flow(n_trials=trials, return_state=True)),
        (
            "batch inference",
            lambda: batch_inference_flow(start=end - timedelta(days=2), end=end, return_state=True),
        ),
    ]
    results: dict[str, Any] = {}
    for name, run in stages:
        state = run()
        if not state.is_completed():
            return state
        results[name] = state.result()
    results["online"] = online_prediction(end - timedelta(minutes=30))
    answer = results["online"]["response"]
    log.info(
        "online prediction: %.0f s by v%s for trip %s",
        answer["predicted_duration_s"],
        answer["model_version"],
        results["online"]["request"],
    )
    for name, scenario, start, window_days in (
        ("baseline window", "baseline", end, 1),
        ("drift window", "covariate_drift", end + timedelta(days=1), 3),
    ):
        state = live_window(scenario, start, window_days, return_state=True)
        if not state.is_completed():
            return state
        results[name] = state.result()
    state = prompt_engineering_flow(
        DEMO_QUESTION, "Pandas", provider="local", max_tokens=48, return_state=True
    )
    if not state.is_completed():
        return state
    results["prompt engineering"] = state.result()
    return {**results, "where": where_to_look()}


@flow(name="demo-live-window")
def live_window(scenario: str, start: datetime, days: int) -> dict[str, Any] | State:
    """A window of new days arrives: land it, refresh features, score it, monitor it."""
    end = start + timedelta(days=days)
    stages = [
        lambda: data_flow(scenario=scenario, start=start.date(), days=days, append=True, return_state=True),
        lambda: features_flow(return_state=True),
        lambda: batch_inference_flow(start=start, end=end, return_state=True),
        lambda: monitoring_flow(start=start, end=end, retrain=True, return_state=True),
    ]
    for run in stages:
        state = run()
        if not state.is_completed():
            return state
    return {"scenario": scenario, "start": start.isoformat(), "end": end.isoformat(), **state.result()}


def where_to_look() -> dict[str, str]:
    settings = get_settings()
    validation = settings.validation_reports_dir
    return {
        "MLflow UI": tracking.ui_command(settings),
        "Prefect UI": "prefect server start  (then rerun with PREFECT_API_URL=http://127.0.0.1:4200/api)",
        "validation report": str(validation / "validation.html"),
        "quarantined rows": str(validation / "trips.quarantine.parquet"),
        "validated data": str(settings.validated_dir),
        "batch predictions": f"{settings.data_dir / 'predictions'} and Postgres table trip_predictions",
        "drift reports": str(settings.monitoring_reports_dir),
        "alerts": str(settings.alerts_log),
        "serving": "mlstack serve  (OpenAPI docs at http://127.0.0.1:8000/docs)",
        "prompt answers": "MLflow experiment prompt_engineering (prompts: ask_in_context), mlstack ask",
        "local LLM endpoint": f"mlstack serve-llm --model {settings.untrained_model_dir}",
        "model registry": "mlstack model status",
    }


if __name__ == "__main__":
    demo_flow()
