"""`pretrain-train`: train or resume a run, in this process or under torchrun with DDP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field

from flows.pretraining.shared import EXPERIMENT, PRESET, RUN, Overrides, layout_of, preset_of
from mlstack import tracking
from mlstack.settings import get_settings
from models.lm.presets import PresetName
from models.lm.train import TrainResult


class TrainParams(BaseModel):
    preset: PresetName | None = PRESET
    run: str | None = RUN
    init: str = Field(
        default="random", description="random, from:DIR, upscale:DIR or downscale:DIR (see models.lm.init)."
    )
    tokenizer: Path | None = Field(
        default=None,
        description="The tokenizer the shards were made with. Default: the corpus's, or init's DIR.",
    )
    resume: bool = Field(default=False, description="Continue the run from its last checkpoint.")
    overrides: Overrides = Field(
        default_factory=dict,
        description="Preset values to change: steps, micro_batch, accumulation, seq_len, lr, warmup,"
        " eval_every, checkpoint_every, compile, device, dtype, and shape fields layers, hidden_size,"
        " heads, context.",
    )
    nproc: int | None = Field(
        default=None, ge=1, description="Processes (torchrun). Default: MLSTACK_PRETRAIN_NPROC."
    )


class TrainFlowResult(TrainResult):
    run_dir: Path
    mlflow_run_id: str


def train_config(params: TrainParams) -> Any:
    """The TrainConfig for these parameters: preset, then overrides, then where things are."""
    from models.lm.init import parse_init
    from models.lm.presets import resolve
    from models.lm.train import TrainConfig

    settings = get_settings()
    preset = preset_of(params.preset)
    layout = layout_of()
    shape, values = resolve(preset, params.overrides)
    _, init_dir = parse_init(params.init)
    tokenizer_dir = params.tokenizer or init_dir or layout.tokenizer
    return TrainConfig(
        run_dir=layout.run(params.run or preset),
        tokens_dir=layout.tokens(tokenizer_dir),
        tokenizer_dir=tokenizer_dir,
        init=params.init,
        shape=shape,
        resume=params.resume,
        peak_flops=settings.pretrain.peak_tflops * 1e12 if settings.pretrain.peak_tflops else None,
        **values,
    )


def _torchrun(config: Any, nproc: int) -> Any:
    """Train under torchrun with `nproc` processes; rank 0 writes the result."""
    config.run_dir.mkdir(parents=True, exist_ok=True)
    config_file, result_file = config.run_dir / "config.json", config.run_dir / "result.json"
    config_file.write_text(config.model_dump_json(indent=2))
    result_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    command += ["-m", "models.lm.train", "--config", str(config_file), "--result", str(result_file)]
    env = {**os.environ, "MLFLOW_TRACKING_URI": get_settings().tracking_uri}
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"torchrun exited {completed.returncode}:\n{completed.stderr[-3000:]}")
    return TrainResult.model_validate_json(result_file.read_text())


@flow(name="pretrain-train", log_prints=False)
def train_flow(params: TrainParams = TrainParams()) -> TrainFlowResult:
    """Train (or resume) a run, tracked in MLflow with system metrics."""
    import mlflow

    from models.lm.train import train

    settings = get_settings()
    config = train_config(params)
    nproc = params.nproc or settings.pretrain.nproc
    tracking.setup(settings, EXPERIMENT)
    run_id_file = config.run_dir / "mlflow_run_id"
    resume_run = run_id_file.read_text().strip() if params.resume and run_id_file.is_file() else None
    logger = get_run_logger()
    # The writer's tag, on a resumed run too: a run left RUNNING by a dead writer is settled as
    # KILLED by the next `tracking.setup`, one still being written is not.
    with mlflow.start_run(
        run_id=resume_run, run_name=config.run_dir.name, log_system_metrics=True, tags=tracking.owner_tags()
    ) as run:
        config.run_dir.mkdir(parents=True, exist_ok=True)
        run_id_file.write_text(run.info.run_id)
        if resume_run is None:
            mlflow.log_params({"preset": preset_of(params.preset), "nproc": nproc, **_flat(config)})
        config = config.model_copy(update={"mlflow_run_id": run.info.run_id})
        logger.info(
            "training %s (%s) on %d process(es) into %s", config.init, config.shape, nproc, config.run_dir
        )
        result = _torchrun(config, nproc) if nproc > 1 else train(config)
        mlflow.log_artifact(str(config.run_dir / "metrics.jsonl"))
    logger.info(
        "%d steps, val loss %.3f (perplexity %.1f), %.0f tokens/s",
        result.steps,
        result.val_loss,
        result.val_perplexity,
        result.tokens_per_s,
    )
    return TrainFlowResult(run_dir=config.run_dir, mlflow_run_id=run.info.run_id, **result.model_dump())


def _flat(config: Any) -> dict[str, Any]:
    values = config.model_dump(mode="json", exclude={"mlflow_run_id", "shape", "resume"})
    return values | {f"shape.{k}": v for k, v in config.shape.__dict__.items()}
