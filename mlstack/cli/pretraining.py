"""`mlstack pretrain`: a small Python code model from raw code: prepare, tokenize, train, evaluate."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlstack.cli.options import build
from mlstack.cli.render import JSON, fail, show
from mlstack.cli.running import run_flow

if TYPE_CHECKING:
    from flows.pretraining import (
        EvaluateResult,
        PrepareResult,
        PretrainResult,
        TokenizeResult,
        TrainFlowResult,
    )

app = typer.Typer(
    help="Pretrain a small Python code model on a cleaned corpus; the champion becomes the local model.\n\n"
    "`mlstack pretrain run` does every step; each step is also a command of its own.",
    no_args_is_help=True,
)


class Preset(StrEnum):
    tiny = "tiny"
    small = "small"


PRESET = typer.Option(
    None, help="tiny (CPU, minutes) or small (124M parameters, a GPU). Default: MLSTACK_PRETRAIN_PRESET."
)
RUN = typer.Option(
    None, "--run", help="The run's name (its folder under home/pretrain/runs). Default: the preset."
)
SOURCE = typer.Option(
    [],
    "--source",
    "-s",
    help="Repeatable: dir:FOLDER, git:REPO_FOLDER, packages[:NAME,NAME] or github:OWNER/REPO[@REF]"
    " (MLSTACK_SOURCES_GITHUB_TOKEN). None: the preset's installed packages.",
)
INIT = typer.Option(
    "random", help="random, from:DIR (any local Hugging Face causal LM), upscale:DIR or downscale:DIR."
)
RESUME = typer.Option(False, "--resume", help="Continue the run from its last checkpoint.")
STEPS = typer.Option(None, help="Optimizer steps (the preset's by default).")
NPROC = typer.Option(
    None, help="Training processes, under torchrun with DDP. Default: MLSTACK_PRETRAIN_NPROC."
)


SET = typer.Option(
    [],
    "--set",
    help="Repeatable KEY=VALUE to change a preset value: steps, micro_batch, accumulation, seq_len, lr,"
    " warmup, eval_every, checkpoint_every, compile, device (auto, cpu, cuda), dtype, or the shape's"
    " layers, hidden_size, heads, context (for upscale/downscale, layers is the target depth).",
)

SET_FIELD = {"overrides": "set"}  # the parameters model's field that --set fills


def overrides(pairs: list[str], steps: int | None) -> dict[str, Any]:
    """`--set` pairs as a dict; values are read as JSON where they parse (numbers, true). The
    keys are checked by the parameters model, as they are for a run from the UI or a deployment."""
    import json

    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise fail(f"--set {pair!r}: expected KEY=VALUE, e.g. --set layers=8")
        try:
            values[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            values[key.strip()] = raw
    values |= {"steps": steps} if steps is not None else {}
    return values


@app.command("prepare")
def prepare_command(source: list[str] = SOURCE, preset: Preset | None = PRESET, as_json: bool = JSON) -> None:
    """Read the sources, clean them (dedup, near-dup, language, quality, secrets), check the result
    and write training shards and a held-out validation shard."""
    from flows.pretraining import PrepareParams, prepare_flow

    show(run_flow(prepare_flow, build(PrepareParams, sources=source, preset=preset)), render_prepare, as_json)


@app.command("tokenize")
def tokenize_command(
    preset: Preset | None = PRESET,
    tokenizer: Path | None = typer.Option(
        None, help="Reuse this model directory's tokenizer instead of training one."
    ),
    as_json: bool = JSON,
) -> None:
    """Train the BPE tokenizer on the corpus, then tokenize the shards concurrently (unchanged
    shards are skipped)."""
    from flows.pretraining import TokenizeParams, tokenize_flow

    show(
        run_flow(tokenize_flow, build(TokenizeParams, preset=preset, tokenizer=tokenizer)),
        render_tokenize,
        as_json,
    )


@app.command("train")
def train_command(
    preset: Preset | None = PRESET,
    run: str | None = RUN,
    init: str = INIT,
    resume: bool = RESUME,
    steps: int | None = STEPS,
    set_: list[str] = SET,
    nproc: int | None = NPROC,
    as_json: bool = JSON,
) -> None:
    """Train on the token shards with checkpoints, tracked in MLflow (experiment "pretraining").

    Killed? `--resume` continues from the last checkpoint on the same loss curve. With --nproc N
    it runs under torchrun with DDP: GPUs, or CPU processes with gloo.
    """
    from flows.pretraining import TrainParams, train_flow

    values = overrides(set_, steps)
    params = build(
        TrainParams,
        SET_FIELD,
        preset=preset,
        run=run,
        init=init,
        resume=resume,
        overrides=values,
        nproc=nproc,
    )
    show(run_flow(train_flow, params), render_train, as_json)


@app.command("run")
def run_command(
    source: list[str] = SOURCE,
    preset: Preset | None = PRESET,
    run: str | None = RUN,
    init: str = INIT,
    resume: bool = RESUME,
    steps: int | None = STEPS,
    set_: list[str] = SET,
    nproc: int | None = NPROC,
    as_json: bool = JSON,
) -> None:
    """Prepare, tokenize, train and evaluate: raw code to a registered model, champion if it is the
    best yet, and then the local model `mlstack ask` and `mlstack serve-llm` use."""
    from flows.pretraining import PretrainParams, pretraining_flow

    values = overrides(set_, steps)
    params = build(
        PretrainParams,
        SET_FIELD,
        sources=source,
        preset=preset,
        run=run,
        init=init,
        resume=resume,
        overrides=values,
        nproc=nproc,
    )
    show(run_flow(pretraining_flow, params), render_run, as_json)


@app.command("evaluate")
def evaluate_command(
    preset: Preset | None = PRESET,
    run: str | None = RUN,
    register: bool = typer.Option(True, help="Register in MLflow and gate against the champion."),
    as_json: bool = JSON,
) -> None:
    """Validation perplexity and bits per byte, and the share of held-out function headers whose
    greedy completion parses; then register the model and make it champion if it beats the
    champion on the same validation text."""
    from flows.pretraining import EvaluateParams, evaluate_flow

    params = build(EvaluateParams, preset=preset, run=run, register=register)
    show(run_flow(evaluate_flow, params), render_evaluate, as_json)


def render_prepare(result: PrepareResult) -> RenderableType:
    table = Table("stage", "in", "out", "removed", "why", title="cleaning")
    for row in result.stages:
        table.add_row(
            str(row["stage"]), str(row["in"]), str(row["out"]), str(row["removed"]), str(row["why"])
        )
    held = result.shards.get("validation", 0)
    return Group(
        table,
        Text(
            f"{result.documents_kept} of {result.documents_read} files kept: {held} held out for validation,"
            f" the rest in {len(result.shards) - 1} shards under {result.corpus_dir}"
        ),
    )


def render_tokenize(result: TokenizeResult) -> RenderableType:
    fresh = sum(not s.skipped for s in result.shards)
    return Text(
        f"{result.train_tokens:,} training and {result.validation_tokens:,} validation tokens"
        f" (vocabulary {result.vocab_size:,}); {fresh} shards tokenized now,"
        f" {len(result.shards) - fresh} unchanged. Tokens: {result.tokens_dir}"
    )


def render_train(result: TrainFlowResult) -> RenderableType:
    resumed = f", resumed from step {result.resumed_from}" if result.resumed_from is not None else ""
    mfu = f", MFU {result.mfu:.1%}" if result.mfu is not None else ""
    return Text(
        f"{result.steps} steps{resumed}: {result.parameters:,} parameters, {result.tokens:,} tokens,"
        f" train loss {result.train_loss:.3f}, validation loss {result.val_loss:.3f}"
        f" (perplexity {result.val_perplexity:.1f}), {result.tokens_per_s:,.0f} tokens/s{mfu}.\n"
        f"Model: {result.model_dir}  MLflow run {result.mlflow_run_id}"
    )


def render_evaluate(result: EvaluateResult) -> RenderableType:
    lines = [
        f"validation perplexity {result.val_perplexity:.1f}, {result.bits_per_byte:.3f} bits/byte;"
        f" {result.parse_share:.0%} of {result.headers} held-out function headers completed into"
        " parsing Python"
    ]
    if result.version is not None:
        verdict = "champion: now the local model" if result.promoted else "kept the champion"
        lines.append(f"code_lm v{result.version}, {verdict} ({result.reason})")
    return Text("\n".join(lines))


def render_run(result: PretrainResult) -> RenderableType:
    return Group(
        render_prepare(result.prepare),
        render_tokenize(result.tokenize),
        render_train(result.train),
        render_evaluate(result.evaluate),
    )
