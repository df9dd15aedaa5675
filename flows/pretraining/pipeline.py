"""`pretraining`: prepare, tokenize, train and evaluate: raw code to the local model."""

from __future__ import annotations

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import flow
from pydantic import BaseModel, Field

from flows.pretraining.evaluate import EvaluateParams, EvaluateResult, evaluate_flow
from flows.pretraining.prepare import PrepareParams, PrepareResult, prepare_flow
from flows.pretraining.shared import PRESET, RUN, Overrides
from flows.pretraining.tokenizing import TokenizeParams, TokenizeResult, tokenize_flow
from flows.pretraining.train import TrainFlowResult, TrainParams, train_flow
from models.lm.presets import PresetName


class PretrainParams(BaseModel):
    sources: list[str] = Field(default_factory=list, description="As in pretrain-prepare.")
    preset: PresetName | None = PRESET
    run: str | None = RUN
    init: str = Field(default="random", description="As in pretrain-train.")
    resume: bool = False
    overrides: Overrides = Field(default_factory=dict, description="As in pretrain-train.")
    nproc: int | None = Field(default=None, ge=1)


class PretrainResult(BaseModel):
    prepare: PrepareResult
    tokenize: TokenizeResult
    train: TrainFlowResult
    evaluate: EvaluateResult


@flow(name="pretraining", log_prints=False)
def pretraining_flow(params: PretrainParams = PretrainParams()) -> PretrainResult:
    """Prepare, tokenize, train, evaluate: raw code to the registered (maybe champion) model."""
    from models.lm.init import parse_init

    _, init_dir = parse_init(params.init)  # a bad --init fails before any work
    prepared = prepare_flow(PrepareParams(sources=params.sources, preset=params.preset))
    tokenized = tokenize_flow(TokenizeParams(preset=params.preset, tokenizer=init_dir))
    trained = train_flow(
        TrainParams(
            preset=params.preset,
            run=params.run,
            init=params.init,
            tokenizer=tokenized.tokenizer_dir,
            resume=params.resume,
            overrides=params.overrides,
            nproc=params.nproc,
        )
    )
    evaluated = evaluate_flow(EvaluateParams(preset=params.preset, run=params.run))
    return PretrainResult(prepare=prepared, tokenize=tokenized, train=trained, evaluate=evaluated)
