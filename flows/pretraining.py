"""Pretraining: a small Python code model, from raw code to the local model everything uses.

1. `pretrain-prepare` reads the sources (folders, git repositories, the installed packages'
   sources, GitHub archives), cleans them stage by stage (dedup, near-dup, language, quality,
   secrets), checks the result, and writes it as training shards and one held-out validation
   shard, split by document hash. A table artifact counts every stage.
2. `pretrain-tokenize` trains a byte-level BPE tokenizer on the training shards (or reuses the
   tokenizer of the model training starts from), then tokenizes the shards concurrently: one
   mapped task per shard, on the configured task runner. Shards done from the same inputs are
   skipped.
3. `pretrain-train` trains, in this process or under torchrun with DDP (MLSTACK_PRETRAIN_NPROC),
   with checkpoints; `resume` continues the last run from its last checkpoint. Loss, learning
   rate, tokens/s, MFU and system metrics go to the MLflow experiment "pretraining".
4. `pretrain-evaluate` scores the model on the validation shard (perplexity, bits per byte, and
   the share of held-out function headers whose greedy completion parses), registers it as a
   version of `code_lm`, and makes it champion only if it beats the champion on the same text.
   The champion becomes the local model (`mlstack ask`, `mlstack serve-llm`, the demo).

`pretraining` runs all four. The `gpu` work pool runs it in production (prefect.yaml).

    python -m flows.pretraining
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from pydantic import AfterValidator, BaseModel, Field

from flows.tasks.runners import task_runner
from mlstack import tracking
from mlstack.pretraining import CorpusError, clean, shards, sources
from mlstack.settings import get_settings
from models.lm.presets import PRESETS, PresetName, check_overrides
from models.lm.train import TrainResult

EXPERIMENT = "pretraining"
PRESET = Field(
    default=None, description="tiny (CPU, minutes) or small (124M, a GPU). Default: MLSTACK_PRETRAIN_PRESET."
)
# Checked when the parameters are: a key the presets do not know is refused, naming it, whether it
# came from the CLI, the UI's form or a deployment's parameters.
Overrides = Annotated[dict[str, Any], AfterValidator(check_overrides)]
RUN = Field(
    default=None,
    pattern=r"^[A-Za-z0-9_.-]+$",
    description="The run's name (its folder). Default: the preset.",
)


class PrepareParams(BaseModel):
    sources: list[str] = Field(
        default_factory=list,
        description="dir:FOLDER, git:REPO_FOLDER, packages[:NAME,NAME] or github:OWNER/REPO[@REF]."
        " Empty: the preset's default (installed packages' sources).",
    )
    preset: PresetName | None = PRESET


class PrepareResult(BaseModel):
    documents_read: int
    documents_kept: int
    stages: list[dict[str, Any]] = Field(description="Per cleaning stage: in, out, removed and why.")
    secrets_redacted: dict[str, int]
    shards: dict[str, int] = Field(description="Shard name -> documents; `validation` is held out.")
    corpus_dir: Path


class TokenizeParams(BaseModel):
    preset: PresetName | None = PRESET
    tokenizer: Path | None = Field(
        default=None,
        description="Reuse this Hugging Face directory's tokenizer (a model to start from)."
        " Default: train one on the corpus.",
    )


class ShardTokens(BaseModel):
    name: str
    tokens: int
    documents: int
    skipped: bool


class TokenizeResult(BaseModel):
    tokenizer_dir: Path
    tokens_dir: Path
    vocab_size: int
    shards: list[ShardTokens]
    train_tokens: int
    validation_tokens: int


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


class EvaluateParams(BaseModel):
    preset: PresetName | None = PRESET
    run: str | None = RUN
    register: bool = Field(default=True, description="Register in MLflow and gate against the champion.")


class EvaluateResult(BaseModel):
    model_dir: Path
    val_perplexity: float
    bits_per_byte: float
    parse_share: float = Field(
        description="Share of held-out function headers completed into parsing Python."
    )
    headers: int
    version: str | None = None
    promoted: bool = False
    reason: str | None = None


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


def _layout() -> shards.Layout:
    return shards.Layout(get_settings().pretrain_dir)


def _preset(preset: str | None) -> str:
    return preset or get_settings().pretrain.preset


@task(name="read-corpus", retries=2, retry_delay_seconds=5, cache_policy=NONE)
def read_corpus(spec: str) -> list[Any]:
    settings = get_settings()
    docs = list(sources.read(sources.parse_spec(spec), settings, settings.pretrain.max_file_bytes))
    get_run_logger().info("%s: %d files", spec, len(docs))
    return docs


@flow(name="pretrain-prepare", log_prints=False)
def prepare_flow(params: PrepareParams = PrepareParams()) -> PrepareResult:
    """Read, clean, check and shard the corpus."""
    settings = get_settings()
    preset = _preset(params.preset)
    specs = params.sources or list(PRESETS[preset].sources)
    parsed = [str(sources.parse_spec(s)) for s in specs]  # a bad --source fails before any read
    documents = [doc for spec in parsed for doc in read_corpus(spec)]
    cleaned = clean.clean(documents)
    table = cleaned.table()
    create_table_artifact(key="pretrain-corpus", table=table, description=f"Cleaning {', '.join(parsed)}")
    for row in table:
        get_run_logger().info("%(stage)s: %(in)d -> %(out)d %(why)s", row)
    clean.check(cleaned, settings.pretrain.min_documents, settings.pretrain.max_removed_share)
    written = shards.write(
        cleaned.documents, _layout().corpus, settings.pretrain.shards, settings.pretrain.validation_share
    )
    counts = {name: sum(1 for _ in shards.read_shard(path)) for name, path in written.items()}
    return PrepareResult(
        documents_read=len(documents),
        documents_kept=len(cleaned.documents),
        stages=table,
        secrets_redacted=dict(cleaned.secrets),
        shards=counts,
        corpus_dir=_layout().corpus,
    )


@task(name="tokenize-shard", cache_policy=NONE)
def tokenize_shard(shard: Path, tokenizer_file: Path, out_dir: Path) -> ShardTokens:
    done = shards.tokenize_shard(shard, tokenizer_file, out_dir)
    return ShardTokens(name=done.name, tokens=done.tokens, documents=done.documents, skipped=done.skipped)


def _train_tokenizer(layout: shards.Layout, vocab_size: int) -> Path:
    """The corpus's tokenizer, retrained only when the training shards or the size changed."""
    from models.lm.tokenizer import train_tokenizer

    train_shards = [p for p in layout.shards() if p.stem != shards.VALIDATION]
    inputs = {"vocab_size": vocab_size, "shards": {p.name: shards.file_hash(p) for p in train_shards}}
    stamp = layout.tokenizer / "inputs.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == inputs:
        return layout.tokenizer
    texts = (doc.text for path in train_shards for doc in shards.read_shard(path))
    tokenizer = train_tokenizer(texts, vocab_size)
    tokenizer.save_pretrained(layout.tokenizer)
    stamp.write_text(json.dumps(inputs))  # last: a stamp only ever describes a whole tokenizer
    return layout.tokenizer


@flow(name="pretrain-tokenize", log_prints=False, task_runner=task_runner())
def tokenize_flow(params: TokenizeParams = TokenizeParams()) -> TokenizeResult:
    """Train (or reuse) the tokenizer, then tokenize the shards concurrently."""
    layout = _layout()
    corpus = layout.shards()
    tokenizer_dir = params.tokenizer or _train_tokenizer(
        layout, PRESETS[_preset(params.preset)].shape.vocab_size
    )
    tokenizer_file = tokenizer_dir / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise CorpusError(f"{tokenizer_dir} has no tokenizer.json (a fast Hugging Face tokenizer)")
    out = layout.tokens(tokenizer_dir)
    done = [f.result() for f in tokenize_shard.map(corpus, tokenizer_file, out)]
    vocab = json.loads(tokenizer_file.read_text())
    get_run_logger().info(
        "%d shards, %d tokenized now, %d unchanged",
        len(done),
        sum(not d.skipped for d in done),
        sum(d.skipped for d in done),
    )
    return TokenizeResult(
        tokenizer_dir=tokenizer_dir,
        tokens_dir=out,
        vocab_size=len(vocab["model"]["vocab"]) + len(vocab.get("added_tokens", [])),
        shards=done,
        train_tokens=sum(d.tokens for d in done if d.name != shards.VALIDATION),
        validation_tokens=sum(d.tokens for d in done if d.name == shards.VALIDATION),
    )


def train_config(params: TrainParams) -> Any:
    """The TrainConfig for these parameters: preset, then overrides, then where things are."""
    from models.lm.init import parse_init
    from models.lm.presets import resolve
    from models.lm.train import TrainConfig

    settings = get_settings()
    preset = _preset(params.preset)
    layout = _layout()
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
    with mlflow.start_run(run_id=resume_run, run_name=config.run_dir.name, log_system_metrics=True) as run:
        config.run_dir.mkdir(parents=True, exist_ok=True)
        run_id_file.write_text(run.info.run_id)
        if resume_run is None:
            mlflow.log_params({"preset": _preset(params.preset), "nproc": nproc, **_flat(config)})
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


@flow(name="pretrain-evaluate", log_prints=False)
def evaluate_flow(params: EvaluateParams = EvaluateParams()) -> EvaluateResult:
    """Score the run's model on the validation shard; register it and gate it."""
    import mlflow

    from models.lm import evaluate, registry

    settings = get_settings()
    layout = _layout()
    run_dir = layout.run(params.run or _preset(params.preset))
    model_dir = run_dir / "model"
    if not (model_dir / "config.json").is_file():
        raise CorpusError(f"no trained model in {model_dir}: run `mlstack pretrain train` first")
    validation_path = layout.corpus / f"{shards.VALIDATION}.jsonl"
    texts = [doc.text for doc in shards.read_shard(validation_path)]
    model, tokenizer = evaluate.load(model_dir)
    score = evaluate.text_score(model, tokenizer, texts)
    headers = evaluate.header_score(model, tokenizer, evaluate.function_headers(texts))
    result = EvaluateResult(
        model_dir=model_dir,
        val_perplexity=score.perplexity,
        bits_per_byte=score.bits_per_byte,
        parse_share=headers.parse_share,
        headers=headers.total,
    )
    _report(result, headers.examples)
    if not params.register:
        return result
    tracking.setup(settings, EXPERIMENT)
    run_id_file = run_dir / "mlflow_run_id"
    run_id = run_id_file.read_text().strip() if run_id_file.is_file() else None
    metrics = {
        "perplexity": score.perplexity,
        "bits_per_byte": score.bits_per_byte,
        "parse_share": headers.parse_share,
    }
    with mlflow.start_run(run_id=run_id, run_name=run_dir.name) as run:
        mlflow.log_metrics({f"eval_{k}": v for k, v in metrics.items()})
        mlflow.log_artifacts(str(model_dir), "model")
        version = registry.register(
            run.info.run_id, f"{run.info.artifact_uri}/model", metrics, shards.file_hash(validation_path)
        )
    decision = registry.gate(settings, version, model_dir, score.bits_per_byte, texts)
    get_run_logger().info("code_lm v%s: %s", version, decision.reason)
    return result.model_copy(
        update={"version": version, "promoted": decision.promoted, "reason": decision.reason}
    )


def _report(result: EvaluateResult, examples: list[dict[str, object]]) -> None:
    lines = [
        f"**Validation**: perplexity {result.val_perplexity:.1f}, {result.bits_per_byte:.3f} bits/byte.",
        f"**Completions that parse**: {result.parse_share:.0%} of {result.headers} held-out"
        " function headers.",
        "",
    ]
    for example in examples:
        verdict = "parses" if example["parses"] else "does not parse"
        lines += [
            f"Completion ({verdict}):",
            "```python",
            f"{example['header']}{example['completion']}",
            "```",
        ]
    create_markdown_artifact("\n".join(lines), key="pretrain-evaluation", description=str(result.model_dir))


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


if __name__ == "__main__":
    pretraining_flow()
