"""The demo: the classic ML loop end to end, on embedded services, in one flow run.

Each stage is a subflow, so the Prefect UI shows the demo as one tree: generate and validate
data, build and materialize features, tune and train a model tracked in MLflow, register it and
gate it against the champion, score the last days in batch, and answer one online request
through the serving app's own prediction path. Then time moves on: a normal day arrives and is
scored and monitored (no alert), then three days of covariate drift arrive (an airport shuttle
launches), and monitoring alerts, emits its event and retrains, and the gate decides on a new
champion. Then the pretraining pattern trains a tiny Python code model on the installed
packages' sources (about a million parameters, minutes on a CPU) and makes it the local model,
and the prompt-engineering pattern asks it one question through its OpenAI-compatible endpoint.
Be clear about what that shows: such a small base model continues Python code after a fashion,
but it was never taught to follow instructions, so its answer is code-like text, not an answer;
the prompt registry, the trace, the checks and the endpoint around it are all real. Last, RAG
refreshes its collection and answers from it with citations (extractively, for that reason),
and fine-tuning adapts the code model with LoRA to the maintainers' answers in the shipped
GitHub sample, then scores it against its base and shows the gate's decision.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import flow, get_run_logger
from prefect.states import Completed, State
from pydantic import BaseModel, Field

from flows.batch_inference import BatchParams, BatchResult, batch_inference_flow
from flows.data import DataParams, DataResult, data_flow
from flows.features import FeaturesResult, features_flow
from flows.fine_tuning import FineTuningParams, FineTuningResult, fine_tuning_flow
from flows.monitoring import MonitoringParams, MonitoringResult, monitoring_flow
from flows.pretraining import PretrainParams, PretrainResult, pretraining_flow
from flows.prompt_engineering import PromptParams, PromptResult, prompt_engineering_flow
from flows.rag import (
    RagAnswerResult,
    RagAskParams,
    RagRefreshParams,
    RagRefreshResult,
    rag_ask_flow,
    rag_refresh_flow,
)
from flows.training import TrainingParams, TrainingResult, training_flow
from mlstack import progress
from mlstack.data.config import GeneratorConfig, Scenario
from mlstack.deploy import stack
from mlstack.io import atomic_file
from mlstack.prompt_engineering import EXPERIMENT
from mlstack.prompt_engineering.prompt import PROMPT_NAME
from mlstack.settings import get_settings
from models.serving.app import TripPrediction, TripPredictor, TripRequest

DEMO_QUESTION = "How do I drop duplicate rows from a DataFrame?"


RAG_QUESTION = "Why did a second drift alert not start another retraining run?"


class DemoParams(BaseModel):
    days: int = Field(default=14, ge=3, description="Days of example data to generate.")
    trials: int | None = Field(default=None, ge=1, description="Optuna trials. Default: params.yaml.")
    pretrain_steps: int | None = Field(
        default=None,
        ge=1,
        description="Steps of the tiny code model's pretraining. Default: the tiny preset's"
        " (minutes on a CPU).",
    )
    finetune_steps: int = Field(default=60, ge=1, description="LoRA steps of the fine-tuning stage.")


class OnlineResult(BaseModel):
    request: TripRequest
    response: TripPrediction


class LiveWindowParams(BaseModel):
    scenario: Scenario = Field(description="What the arriving days look like.")
    start: datetime = Field(description="When they start.")
    days: int = Field(ge=1, description="How many days arrive.")


class LiveWindowResult(BaseModel):
    scenario: Scenario
    monitoring: MonitoringResult


class DemoResult(BaseModel):
    data: DataResult
    features: FeaturesResult
    training: TrainingResult
    batch_inference: BatchResult
    online: OnlineResult
    baseline_window: LiveWindowResult
    drift_window: LiveWindowResult
    pretraining: PretrainResult
    prompt_engineering: PromptResult
    rag_refresh: RagRefreshResult
    rag: RagAnswerResult
    fine_tuning: FineTuningResult
    where: dict[str, str] = Field(description="What to open next, and where it lives.")
    stage_seconds: dict[str, float] = Field(default_factory=dict, description="Each stage's wall time.")


def online_prediction(at: datetime) -> OnlineResult:
    """One request through the serving app's own prediction path (Feast online, the champion,
    the serving log), called in process."""
    request = TripRequest(
        driver_id=17, pickup_zone=3, dropoff_zone=12, distance_km=6.4, passenger_count=1, requested_at=at
    )
    [response] = TripPredictor().load()([request])
    return OnlineResult(request=request, response=response)


def _run_all(
    stages: list[tuple[str, Callable[[], State]]], label: str, seconds: dict[str, float] | None = None
) -> dict[str, Any] | State:
    """Each stage's result by name; the first state that did not complete, if one did not. A bar
    counts the stages (a log line every so often off a terminal), with the stages' own bars
    (pretraining's steps) beneath; `seconds` gets each stage's wall time."""
    results: dict[str, Any] = {}
    bar = progress.open_bar(label, len(stages), eta=False)  # stages last seconds to minutes
    try:
        for name, run in stages:
            bar.update(note=f"now {name}")
            started = time.monotonic()
            state = run()
            if seconds is not None:
                seconds[name] = round(time.monotonic() - started, 1)
            if not state.is_completed():
                return state
            results[name] = state.result()
            bar.advance()
    finally:
        bar.close()
    return results


# Each stage's seconds in `mlstack demo` with its defaults on an idle 2-core, 23 GB machine (the CI
# runner's size), measured on 2026-12-03 with `mlstack demo --json` (its stage_seconds; 263 s in
# all with `up`): what the demo expects before a run of its own in this data dir has timed them.
REFERENCE_CORES = 2
REFERENCE_S: dict[str, float] = {
    "data": 2,
    "features": 7,
    "training": 16,
    "batch_inference": 1,
    "online": 1,
    "baseline_window": 9,
    "drift_window": 17,
    "pretraining": 148,
    "prompt_engineering": 7,
    "rag_refresh": 12,
    "rag": 1,
    "fine_tuning": 15,
}
SCALED_BY_STEPS = {"pretraining": "pretrain_steps", "fine_tuning": "finetune_steps"}


def timings_file() -> Path:
    return get_settings().home / "demo" / "timings.json"


def expected_seconds(params: DemoParams) -> tuple[dict[str, float], str]:
    """How long each stage should take here, and where that comes from: the last demo in this
    data dir (its stages timed on this machine), else the reference run; the two training stages
    scale with their steps."""
    import json

    measured, source = (
        REFERENCE_S,
        f"a reference run on {REFERENCE_CORES} cores (this machine has {os.cpu_count()})",
    )
    basis = DemoParams()
    try:
        last = json.loads(timings_file().read_text())
        measured, basis = last["stage_seconds"], DemoParams.model_validate(last["params"])
        source = f"the last demo in this data dir ({last['finished']})"
    except (OSError, ValueError, KeyError):
        pass
    expected = dict(measured)
    for stage, field in SCALED_BY_STEPS.items():
        before, now = _steps(basis, field), _steps(params, field)
        if stage in expected and before and now:
            expected[stage] = round(expected[stage] * now / before, 1)
    return expected, source


def _steps(params: DemoParams, field: str) -> int | None:
    value = getattr(params, field)
    if value is None and field == "pretrain_steps":
        from models.lm.presets import PRESETS

        return PRESETS["tiny"].train["steps"]
    return value


def _plan(params: DemoParams) -> None:
    expected, source = expected_seconds(params)
    stages = ", ".join(f"{name} {progress.duration(s)}" for name, s in expected.items())
    get_run_logger().info(
        "expected on this machine, from %s: %s; about %s in all",
        source,
        stages,
        progress.duration(sum(expected.values())),
    )


def _record(params: DemoParams, seconds: dict[str, float]) -> None:
    import json

    with atomic_file(timings_file()) as tmp:
        finished = datetime.now(UTC).isoformat(timespec="seconds")
        tmp.write_text(
            json.dumps(
                {"params": params.model_dump(mode="json"), "stage_seconds": seconds, "finished": finished}
            )
        )


@flow(name="demo")
def demo_flow(params: DemoParams = DemoParams()) -> DemoResult | State:
    """Run each stage in turn; stop at the first that fails, with its reason."""
    window = GeneratorConfig(days=params.days)  # from the example's own first day
    end = datetime.combine(window.start + timedelta(days=window.days), datetime.min.time(), tzinfo=UTC)
    question = PromptParams(question=DEMO_QUESTION, context="Pandas", provider="local", max_tokens=48)
    steps = {"steps": params.pretrain_steps} if params.pretrain_steps else {}
    pretrain = PretrainParams(preset="tiny", overrides=steps)
    stages: list[tuple[str, Callable[[], State]]] = [
        ("data", lambda: data_flow(DataParams(window=window), return_state=True)),
        ("features", lambda: features_flow(return_state=True)),
        ("training", lambda: training_flow(TrainingParams(n_trials=params.trials), return_state=True)),
        (
            "batch_inference",
            lambda: batch_inference_flow(
                BatchParams(start=end - timedelta(days=2), end=end), return_state=True
            ),
        ),
        ("online", lambda: _online(end - timedelta(minutes=30))),
        (
            "baseline_window",
            lambda: live_window(LiveWindowParams(scenario="baseline", start=end, days=1), return_state=True),
        ),
        (
            "drift_window",
            lambda: live_window(
                LiveWindowParams(scenario="covariate_drift", start=end + timedelta(days=1), days=3),
                return_state=True,
            ),
        ),
        ("pretraining", lambda: pretraining_flow(pretrain, return_state=True)),
        ("prompt_engineering", lambda: prompt_engineering_flow(question, return_state=True)),
        ("rag_refresh", lambda: rag_refresh_flow(RagRefreshParams(evaluate=False), return_state=True)),
        ("rag", lambda: rag_ask_flow(RagAskParams(question=RAG_QUESTION), return_state=True)),
        (
            "fine_tuning",
            lambda: fine_tuning_flow(
                FineTuningParams(backend="local", steps=params.finetune_steps), return_state=True
            ),
        ),
    ]
    _plan(params)
    seconds: dict[str, float] = {}
    results = _run_all(stages, "demo", seconds)
    if isinstance(results, State):
        return results
    _record(params, seconds)
    return DemoResult(**results, where=where_to_look(), stage_seconds=seconds)


def _online(at: datetime) -> State:
    online = online_prediction(at)
    get_run_logger().info(
        "online prediction: %.0f s by v%s for trip %s",
        online.response.predicted_duration_s,
        online.response.model_version,
        online.request.model_dump(mode="json"),
    )
    return Completed(data=online)


@flow(name="demo-live-window")
def live_window(params: LiveWindowParams) -> LiveWindowResult | State:
    """A window of new days arrives: land it, refresh features, score it, monitor it."""
    start, end = params.start, params.start + timedelta(days=params.days)
    arriving = GeneratorConfig(scenario=params.scenario, start=start.date(), days=params.days)
    results = _run_all(
        [
            ("data", lambda: data_flow(DataParams(window=arriving, append=True), return_state=True)),
            ("features", lambda: features_flow(return_state=True)),
            ("batch", lambda: batch_inference_flow(BatchParams(start=start, end=end), return_state=True)),
            (
                "monitoring",
                lambda: monitoring_flow(
                    MonitoringParams(start=start, end=end, retrain=True), return_state=True
                ),
            ),
        ],
        f"{params.scenario} window",
    )
    if isinstance(results, State):
        return results
    return LiveWindowResult(scenario=params.scenario, monitoring=results["monitoring"])


def where_to_look() -> dict[str, str]:
    settings = get_settings()
    validation = settings.validation_reports_dir
    ui = stack.uis(settings)
    return {
        "Prefect UI": f"{ui['Prefect UI']}  (this run and each stage's subflow)",
        "MLflow UI": f"{ui['MLflow UI']}  (experiments, the model registry, prompts)",
        "validation report": str(validation / "validation.html"),
        "quarantined rows": str(validation / "trips.quarantine.parquet"),
        "validated data": str(settings.validated_dir),
        "batch predictions": f"{settings.data_dir / 'predictions'} and Postgres table trip_predictions",
        "drift reports": str(settings.monitoring_reports_dir),
        "drift over time": f"{ui['Evidently UI']}  (the Evidently UI); mlstack drift-history",
        "feature store": "mlstack features ui  (Feast's UI on this data dir)",
        "alerts": str(settings.alerts_log),
        "serving": "mlstack serve  (OpenAPI docs at http://127.0.0.1:8000/docs)",
        "prompt answers": f"MLflow experiment {EXPERIMENT} (prompts: {PROMPT_NAME}), mlstack ask",
        "pretrained code model": f"{settings.pretrained_champion_file}, mlstack pretrain --help",
        "fine-tuned chat model": f"{settings.finetuned_champion_file}, mlstack finetune --help",
        "local LLM endpoint": "mlstack serve-llm  (the fine-tuned champion, else the pretrained one)",
        "model registry": "mlstack model status",
        "plain prefect and mlflow commands": 'eval "$(mlstack env)"  (points them at these servers)',
        "stop the servers": "mlstack down",
    }
