"""Fine-tuning: questions asked in a GitHub repository, answered in its maintainers' tone.

1. `finetune-ingest` reads issues with their comments (the GitHub API, or a dump in its shape;
   offline, the shipped sample), keeps each issue's question and best maintainer answer, counts
   what it drops and why, and writes one partition file per month the issues were opened: one
   mapped task each, deterministic, rewritten only when its pairs changed.
2. `finetune-dataset` optionally asks a person to approve, edit or drop pairs (`review`): the
   run pauses with a form in the Prefect UI, a page of pairs at a time, and stores each
   decision so that no pair is asked about twice. It then splits by a hash of the issue
   (disjoint, and stable as data grows), writes chat JSONL in OpenAI's format with the tone
   instruction as the system message, validates both files by OpenAI's rules, and reports
   token counts and the estimated cost before anything is submitted.
3. `finetune-train` trains: LoRA on a local model (the pretraining champion by default), or an
   OpenAI fine-tuning job that it polls to the end.
4. `finetune-evaluate` scores the fine-tuned model and its base on the validation set (loss on
   the assistant's tokens where it can be read, and ROUGE-L against the maintainers' answers),
   logs both to MLflow, registers the model as a version of `support_lm`, and makes it
   champion only if it beats its base and the current champion. A local champion becomes the
   local chat model (`mlstack ask`, `mlstack serve-llm`).

`fine-tuning` runs all four. The `gpu` work pool runs it in production (prefect.yaml).

    python -m flows.fine_tuning
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Literal

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from pydantic import BaseModel, Field

from flows.tasks.runners import task_runner
from mlstack import tracking
from mlstack.fine_tuning import FinetuneError, Layout, chat, pairs, review, source_location, split
from mlstack.io import file_hash
from mlstack.settings import FINETUNED_MODEL, Settings, get_settings

EXPERIMENT = "fine-tuning"
REVIEW_POLL_S = 2  # how often a paused run asks the API whether its form was submitted
Backend = Literal["local", "openai"]
SOURCE = Field(
    default=None,
    description="github:OWNER/REPO or github:DUMP.json. Default: MLSTACK_FINETUNE_SOURCE, else the"
    " shipped sample dump.",
)


class IngestParams(BaseModel):
    source: str | None = SOURCE


class IngestResult(BaseModel):
    source: str
    pairs: int
    dropped: dict[str, int] = Field(description="Issues without a usable pair, by reason.")
    partitions: dict[str, int] = Field(description="Month (YYYY-MM) -> pairs.")
    rewritten: list[str] = Field(description="Partitions written this run; the rest were unchanged.")
    skipped: list[str] = Field(default_factory=list, description="Records that could not be read.")
    partitions_dir: Path


class DatasetParams(BaseModel):
    source: str | None = SOURCE
    review: bool = Field(default=False, description="Pause for a person to approve, edit or drop pairs.")
    backend: Backend | None = Field(
        default=None,
        description="Whose tokens and limits to check against. Default: MLSTACK_FINETUNE_BACKEND.",
    )
    base: Path | None = Field(
        default=None, description="local backend: the model to adapt. Default: the pretraining champion."
    )


class DatasetResult(BaseModel):
    train_file: Path
    validation_file: Path
    train: int
    validation: int
    review: dict[str, int] | None = Field(
        default=None, description="Decisions: approved, edited, dropped, undecided (review runs only)."
    )
    review_timed_out: bool = False
    train_tokens: int
    billed_tokens: int
    estimated_cost_usd: float | None = Field(default=None, description="openai backend only.")
    token_counter: str


class TrainParams(BaseModel):
    source: str | None = SOURCE
    backend: Backend | None = Field(default=None, description="Default: MLSTACK_FINETUNE_BACKEND.")
    base: Path | None = Field(
        default=None,
        description="local: a Hugging Face causal-LM directory. Default: the pretraining champion."
        " openai: ignored (MLSTACK_FINETUNE_OPENAI_MODEL).",
    )
    run: str = Field(default="support", pattern=r"^[A-Za-z0-9_.-]+$", description="The run's name (folder).")
    steps: int = Field(default=60, ge=1, description="local: optimizer steps.")
    lr: float = Field(default=2e-3, gt=0, description="local: peak learning rate.")
    r: int = Field(default=8, ge=1, description="local: LoRA rank.")
    merge: bool = Field(default=False, description="local: also save the adapter merged into a full model.")
    suffix: str = Field(
        default="mlstack", pattern=r"^[a-z0-9-]{1,40}$", description="openai: the fine-tuned model's suffix."
    )


class TrainResult(BaseModel):
    backend: Backend
    base: str = Field(description="The base model: a directory (local) or a model name (openai).")
    model: str = Field(description="The fine-tuned model: its directory (local) or name (openai).")
    mlflow_run_id: str
    metrics: dict[str, float]
    job: dict[str, Any] | None = Field(default=None, description="openai: the job's id, files and events.")


class EvaluateParams(BaseModel):
    source: str | None = SOURCE
    mlflow_run_id: str | None = Field(
        default=None, description="The finetune-train run to evaluate. Default: the latest one."
    )


class EvaluateResult(BaseModel):
    scores: dict[str, dict[str, float | None]] = Field(description="fine-tuned, base, champion -> metrics.")
    version: str
    promoted: bool
    reason: str


class FineTuningParams(BaseModel):
    source: str | None = SOURCE
    backend: Backend | None = Field(default=None, description="local (LoRA) or openai.")
    review: bool = Field(default=False, description="Pause for a human review of the pairs first.")
    base: Path | None = Field(default=None, description="As in finetune-train.")
    run: str = Field(default="support", pattern=r"^[A-Za-z0-9_.-]+$")
    steps: int = Field(default=60, ge=1)
    merge: bool = False


class FineTuningResult(BaseModel):
    ingest: IngestResult
    dataset: DatasetResult
    train: TrainResult
    evaluate: EvaluateResult


def _layout(source: str | None) -> Layout:
    settings = get_settings()
    return Layout(settings.finetune_dir, source_location(source or settings.finetune.source))


def _backend(backend: str | None) -> Backend:
    return backend or get_settings().finetune.backend  # type: ignore[return-value]


@task(name="read-issues", retries=2, retry_delay_seconds=10, cache_policy=NONE)
def read_issues(location: str) -> Any:
    from mlstack.rag.sources import github

    read = github.threads(location, get_settings())
    get_run_logger().info("%s: %d issues, %d records skipped", location, len(read.threads), len(read.skipped))
    return read


@task(name="write-partition", cache_policy=NONE)
def write_partition(month: str, month_pairs: list[pairs.Pair], folder: Path) -> bool:
    return pairs.write_partition(month_pairs, folder / f"{month}.jsonl")


@flow(name="finetune-ingest", log_prints=False, task_runner=task_runner())
def ingest_flow(params: IngestParams = IngestParams()) -> IngestResult:
    """Issues -> Q&A pairs, one partition file per month."""
    settings = get_settings()
    layout = _layout(params.source)
    read = read_issues(layout.source)
    if read.stopped or (not read.complete and not read.threads):
        # A partial read would rewrite its months with part of their pairs: write nothing.
        why = read.stopped or "; ".join(str(s) for s in read.skipped)
        raise FinetuneError(f"{layout.source}: {why}. Nothing was written; rerun to read it whole")
    extracted = pairs.extract(read.threads, settings.finetune.min_answer_chars)
    months = pairs.by_month(extracted.pairs)
    futures = {
        month: write_partition.submit(month, found, layout.partitions) for month, found in months.items()
    }
    rewritten = [month for month, future in futures.items() if future.result()]
    # A month whose issues are all gone now has no pairs: its old file must not feed training.
    for stale in set(p.stem for p in layout.partitions.glob("*.jsonl")) - set(months):
        (layout.partitions / f"{stale}.jsonl").unlink()
        rewritten.append(stale)
    result = IngestResult(
        source=layout.source,
        pairs=len(extracted.pairs),
        dropped=dict(extracted.dropped),
        partitions={month: len(found) for month, found in months.items()},
        rewritten=sorted(rewritten),
        skipped=[str(s) for s in read.skipped],
        partitions_dir=layout.partitions,
    )
    table = [{"partition": m, "pairs": n, "rewritten": m in rewritten} for m, n in result.partitions.items()]
    table += [
        {"partition": f"dropped: {why}", "pairs": n, "rewritten": False} for why, n in result.dropped.items()
    ]
    create_table_artifact(table, key="finetune-partitions", description=f"Q&A pairs from {layout.source}")
    get_run_logger().info(
        "%d pairs in %d partitions (%d rewritten), dropped %s",
        result.pairs,
        len(months),
        len(rewritten),
        dict(extracted.dropped) or "none",
    )
    return result


def review_form(page: list[pairs.Pair], number: int, total: int) -> type:
    """A Prefect run input form for one page: per pair, approve / edit / drop and its answer."""
    import pydantic
    from prefect.input import RunInput

    fields: dict[str, Any] = {
        "reviewer": (str, Field(default="", title="Your name (kept with the decisions)")),
    }
    lines = [
        f"### Review page {number} of {total}",
        "",
        "Approve, edit (change the answer) or drop each pair.",
    ]
    for i, pair in enumerate(page, start=1):
        title = pair.question.splitlines()[0][:80]
        fields[f"pair_{i}"] = (
            Literal["approve", "edit", "drop"],
            Field(default="approve", title=f"{i}. {title}", description=pair.url),
        )
        fields[f"answer_{i}"] = (str, Field(default=pair.answer, title=f"{i}. answer"))
        lines += ["", f"**{i}. [{title}]({pair.url})**", "", f"> {pair.question[:600]}", "", pair.answer]
    form = pydantic.create_model(f"ReviewPage{number}", __base__=RunInput, **fields)
    form._description = "\n".join(lines)
    return form


def _ask(form: type, timeout_s: int, key: str) -> Any | None:
    """Pause for the form; None when nobody answered within timeout_s. The run resumes itself
    then: Prefect's own pause timeout would fail the run instead of going on."""
    from prefect.context import get_run_context
    from prefect.flow_runs import pause_flow_run, resume_flow_run

    run_id = get_run_context().flow_run.id  # type: ignore[union-attr]
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        try:
            resume_flow_run(run_id, run_input={})
        except Exception:  # a person answered first: theirs counts
            expired.clear()

    timer = threading.Timer(timeout_s, expire)
    timer.daemon = True
    timer.start()
    try:
        values = pause_flow_run(
            wait_for_input=form, timeout=timeout_s + 300, poll_interval=REVIEW_POLL_S, key=key
        )
    finally:
        timer.cancel()
    return None if expired.is_set() else values


def _review(
    found: list[pairs.Pair], layout: Layout, settings: Settings
) -> tuple[list[pairs.Pair], dict, bool]:
    logger = get_run_logger()
    store = review.Store(layout.reviews)
    todo = review.pending(found, store.load())
    pages = list(review.pages(todo, settings.finetune.review_page_size))
    timed_out = False
    logger.info(
        "review: %d pairs to decide in %d page(s); %d decided before",
        len(todo),
        len(pages),
        len(found) - len(todo),
    )
    for number, page in enumerate(pages, start=1):
        values = _ask(
            review_form(page, number, len(pages)), settings.finetune.review_timeout_s, f"review-{number}"
        )
        if values is None:
            timed_out = True
            logger.warning(
                "review: nobody answered page %d within %d s; going on with the pairs approved so far"
                " (the rest wait for the next review)",
                number,
                settings.finetune.review_timeout_s,
            )
            break
        by = getattr(values, "reviewer", "") or None
        store.record(
            review.decide(pair, getattr(values, f"pair_{i}"), getattr(values, f"answer_{i}"), by)
            for i, pair in enumerate(page, start=1)
        )
    kept, counts = review.apply(found, store.load())
    table = [{"decision": k, "pairs": v} for k, v in sorted(counts.items())]
    create_table_artifact(table, key="finetune-review", description="Review decisions on this run's pairs")
    return kept, dict(counts), timed_out


def _counter(backend: Backend, base: Path | None) -> chat.Counter:
    """The tokens of the model that will train: OpenAI's encoding, or the local base's tokenizer."""
    from models.lm.lora import token_counter

    if backend == "openai":
        return token_counter(backend, None)
    try:
        found = _base_dir(base)
    except FinetuneError as exc:  # a dataset can be built before there is a model to train
        get_run_logger().warning("%s; counting tokens by estimate", exc)
        found = None
    return token_counter(backend, found)


def _base_dir(base: Path | None) -> Path:
    from mlstack.llm.local_server import is_model_dir, pretrained_champion

    found = base or pretrained_champion(get_settings())
    if found is None:
        raise FinetuneError(
            "no base model: the local backend adapts the pretraining champion, and there is none yet."
            " Run `mlstack pretrain run`, or pass --base DIR (any Hugging Face causal-LM directory)"
        )
    if not is_model_dir(found):
        raise FinetuneError(f"--base {found}: not a Hugging Face model directory (no config.json)")
    return found.resolve()


@flow(name="finetune-dataset", log_prints=False)
def dataset_flow(params: DatasetParams = DatasetParams()) -> DatasetResult:
    """Partitions -> (review) -> split -> chat JSONL -> validation, counts and cost."""
    settings = get_settings()
    layout = _layout(params.source)
    backend = _backend(params.backend)
    found = [p for path in sorted(layout.partitions.glob("*.jsonl")) for p in pairs.read_partition(path)]
    if not found:
        raise FinetuneError(f"no pairs under {layout.partitions}: run `mlstack finetune ingest` first")
    decisions, timed_out = None, False
    if params.review:
        found, decisions, timed_out = _review(found, layout, settings)
    sides = split.split(found, settings.finetune.validation_share)
    system = settings.finetune.system_prompt
    files = {name: layout.datasets / f"{name}.jsonl" for name in sides}
    for name, side_pairs in sides.items():
        chat.write_jsonl((chat.example(p, system) for p in side_pairs), files[name])
    counter = _counter(backend, params.base)
    limits = settings.finetune
    reports = {
        "train": chat.validate(files["train"], counter, limits.max_example_tokens, limits.min_examples),
        "validation": chat.validate(files["validation"], counter, limits.max_example_tokens, 1),
    }
    price = limits.price_per_million_tokens if backend == "openai" else None
    summary = reports["train"].summary(limits.max_example_tokens, limits.epochs, price)
    _dataset_report(sides, reports, summary, decisions)
    logger = get_run_logger()
    logger.info(
        "%d training / %d validation examples; %d tokens (%s), %d billed over %d epochs%s",
        len(sides["train"]),
        len(sides["validation"]),
        summary["tokens"],
        counter.name,
        summary["billed_tokens"],
        limits.epochs,
        f", about ${summary['estimated_cost_usd']:.2f}" if price is not None else "",
    )
    for report in reports.values():
        report.raise_for_findings()
    return DatasetResult(
        train_file=files["train"],
        validation_file=files["validation"],
        train=len(sides["train"]),
        validation=len(sides["validation"]),
        review=decisions,
        review_timed_out=timed_out,
        train_tokens=summary["tokens"],
        billed_tokens=summary["billed_tokens"],
        estimated_cost_usd=summary.get("estimated_cost_usd"),
        token_counter=counter.name,
    )


def _dataset_report(sides: dict, reports: dict, summary: dict, decisions: dict | None) -> None:
    lines = [
        f"**Split** (by issue hash): {len(sides['train'])} training, {len(sides['validation'])} validation.",
        f"**Tokens** ({summary['counter']}): {summary['tokens']:,} in training, the longest example"
        f" {summary['max_example_tokens']:,}; {summary['billed_tokens']:,} billed over"
        f" {summary['epochs']} epochs.",
    ]
    if "estimated_cost_usd" in summary:
        lines.append(
            f"**Estimated cost**: ${summary['estimated_cost_usd']:.2f} before anything is submitted."
        )
    if decisions is not None:
        lines.append(f"**Review**: {decisions}.")
    findings = [f for report in reports.values() for f in report.findings]
    lines.append(f"**Validation findings**: {len(findings) or 'none'}.")
    bullets = "".join(f"\n- `{f}`" for f in findings[:50])  # one list under its heading
    create_markdown_artifact("\n\n".join(lines) + bullets, key="finetune-dataset")


def _files(params: TrainParams | EvaluateParams) -> tuple[Path, Path]:
    layout = _layout(params.source)
    return layout.datasets / "train.jsonl", layout.datasets / "validation.jsonl"


@flow(name="finetune-train", log_prints=False)
def train_flow(params: TrainParams = TrainParams()) -> TrainResult:
    """LoRA on a local model, or an OpenAI fine-tuning job, tracked in MLflow."""
    import mlflow

    settings = get_settings()
    backend = _backend(params.backend)
    train_file, validation_file = _files(params)
    if not train_file.is_file():
        raise FinetuneError(f"no {train_file}: run `mlstack finetune dataset` (or `run`) first")
    tracking.setup(settings, EXPERIMENT)
    with mlflow.start_run(run_name=f"{params.run}-{backend}") as run:
        mlflow.log_params({"backend": backend, **params.model_dump(mode="json", exclude={"source", "base"})})
        mlflow.log_artifact(str(train_file), "data")
        mlflow.log_artifact(str(validation_file), "data")
        if backend == "local":
            result = _train_local(params, train_file, validation_file, run.info.run_id)
        else:
            result = _train_openai(params, train_file, validation_file, run.info.run_id)
        mlflow.log_metrics({k: v for k, v in result.metrics.items() if v == v})  # NaN: no validation
        # The events stay in the job artifact: a tag holds at most a few kB.
        trained = result.model_dump(mode="json", exclude={"metrics"})
        if trained["job"]:
            trained["job"].pop("events", None)
        mlflow.set_tags({TRAINED_TAG: json.dumps(trained)})
    return result


TRAINED_TAG = "finetune.trained"  # the run's TrainResult (less metrics): what evaluation reads


def _trained(run_id: str | None) -> TrainResult:
    """A finetune-train run's result, from its MLflow tags and metrics; the latest run by default."""
    import mlflow

    tracking.setup(get_settings(), EXPERIMENT)
    if run_id is None:
        runs = mlflow.search_runs(
            experiment_names=[EXPERIMENT],
            filter_string=f"tags.`{TRAINED_TAG}` != ''",
            order_by=["attributes.start_time DESC"],
            max_results=1,
            output_format="list",
        )
        if not runs:
            raise FinetuneError("no finetune-train run to evaluate: run `mlstack finetune run` first")
        run = runs[0]
    else:
        run = mlflow.get_run(run_id)
    if TRAINED_TAG not in run.data.tags:
        raise FinetuneError(f"MLflow run {run.info.run_id} is not a finetune-train run")
    return TrainResult.model_validate({**json.loads(run.data.tags[TRAINED_TAG]), "metrics": run.data.metrics})


def _train_local(params: TrainParams, train_file: Path, validation_file: Path, run_id: str) -> TrainResult:
    import mlflow

    from models.lm import lora

    base = _base_dir(params.base)
    layout = _layout(params.source)
    config = lora.FinetuneConfig(
        base_dir=base,
        out_dir=layout.run(params.run),
        steps=params.steps,
        lr=params.lr,
        r=params.r,
        merge=params.merge,
    )
    mlflow.log_params({"base": str(base), "alpha": config.alpha, "batch_size": config.batch_size})
    done = lora.train(config, chat.read_jsonl(train_file), chat.read_jsonl(validation_file))
    model = done.adapter_dir or done.merged_dir
    assert model is not None
    mlflow.log_artifacts(str(model), "model")
    get_run_logger().info(
        "LoRA: %d of %d parameters trained (%.2f%%), validation loss %.3f -> %.3f in %.0f s",
        done.trainable_parameters,
        done.total_parameters,
        100 * done.trainable_fraction,
        done.val_loss_before,
        done.val_loss_after,
        done.seconds,
    )
    metrics = {
        k: float(getattr(done, k))
        for k in ("train_loss", "val_loss_before", "val_loss_after", "trainable_fraction", "step_seconds")
    }
    return TrainResult(
        backend="local", base=str(base), model=str(model), mlflow_run_id=run_id, metrics=metrics
    )


def _train_openai(params: TrainParams, train_file: Path, validation_file: Path, run_id: str) -> TrainResult:
    from mlstack.fine_tuning import openai_jobs
    from mlstack.llm.providers import openai_endpoint

    settings = get_settings()
    endpoint = openai_endpoint(settings, "openai")
    logger = get_run_logger()
    with endpoint.explained():
        outcome = openai_jobs.run(
            endpoint.client,
            train_file,
            validation_file,
            settings.finetune.openai_model,
            params.suffix,
            settings.finetune.epochs,
            settings.finetune.poll_max_s,
            settings.finetune.job_timeout_s,
            on_event=logger.info,
        )
    assert outcome.fine_tuned_model is not None
    job = {
        "id": outcome.job_id,
        "status": outcome.status,
        "training_file": outcome.training_file,
        "validation_file": outcome.validation_file,
        "trained_tokens": outcome.trained_tokens,
        "events": outcome.events,
    }
    create_markdown_artifact(
        f"**OpenAI job** `{outcome.job_id}`: {outcome.status}, model `{outcome.fine_tuned_model}`.\n\n"
        + "\n".join(f"- {e}" for e in outcome.events[-30:]),
        key="finetune-job",
    )
    return TrainResult(
        backend="openai",
        base=outcome.model,
        model=outcome.fine_tuned_model,
        mlflow_run_id=run_id,
        metrics=outcome.metrics,
        job=job,
    )


def _scorer(backend: Backend, examples: list[dict[str, Any]]) -> Any:
    """model reference -> ChatScore on the validation examples, by the backend's means."""
    from models.lm import lora
    from models.lm.registry import ChatScore

    references = [e["messages"][-1]["content"] for e in examples]
    if backend == "local":

        def local(ref: str) -> ChatScore:
            model, tokenizer = lora.load(Path(ref))
            loss = lora.assistant_loss(model, tokenizer, examples)
            return ChatScore(lora.rouge_l(lora.answers(model, tokenizer, examples), references), loss)

        return local
    from mlstack.fine_tuning import openai_jobs
    from mlstack.llm.providers import openai_endpoint

    endpoint = openai_endpoint(get_settings(), "openai")

    def remote(ref: str) -> ChatScore:
        with endpoint.explained():
            replies = openai_jobs.replies(endpoint.client, ref, examples)
        return ChatScore(lora.rouge_l(replies, references))

    return remote


@flow(name="finetune-evaluate", log_prints=False)
def evaluate_flow(params: EvaluateParams) -> EvaluateResult:
    """Score fine-tuned, base and champion on the validation set; register; gate."""
    import mlflow

    from models.lm import registry

    settings = get_settings()
    trained = _trained(params.mlflow_run_id)
    _, validation_file = _files(params)
    examples = chat.read_jsonl(validation_file)
    score = _scorer(trained.backend, examples)
    ours, base = score(trained.model), score(trained.base)
    champion = registry.finetuned_champion()
    theirs = None
    if champion is not None:
        tags = champion[1]
        if tags.get("backend") == trained.backend:  # scored by the same means, on the same set
            local = trained.backend == "local"
            theirs = score(
                str(registry.champion_dir(settings, champion[0], FINETUNED_MODEL)) if local else tags["model"]
            )
    tracking.setup(settings, EXPERIMENT)
    with mlflow.start_run(run_id=trained.mlflow_run_id):
        mlflow.log_metrics({"rouge_l": ours.rouge_l, "base_rouge_l": base.rouge_l})
        if ours.loss is not None and base.loss is not None:
            mlflow.log_metrics({"assistant_loss": ours.loss, "base_assistant_loss": base.loss})
        source = f"{mlflow.get_artifact_uri()}/model"
        if trained.backend == "openai":
            mlflow.log_dict(
                {"provider": "openai", "model": trained.model, **(trained.job or {})}, "model/model.json"
            )
        tags = {
            "backend": trained.backend,
            "model": trained.model,
            "base": trained.base,
            "validation.sha256": file_hash(validation_file),
            "val.rouge_l": f"{ours.rouge_l:.4f}",
        }
        if trained.job:
            tags |= {f"job.{k}": str(trained.job[k]) for k in ("id", "training_file", "validation_file")}
        version = registry.register_finetuned(trained.mlflow_run_id, source, tags)
    decision = registry.gate_finetuned(version, ours, base, theirs)
    if decision.promoted and trained.backend == "local":
        registry.install_finetuned(settings, version, Path(trained.model))
    scores = {
        "fine-tuned": {"rouge_l": ours.rouge_l, "loss": ours.loss},
        "base": {"rouge_l": base.rouge_l, "loss": base.loss},
    }
    if theirs is not None:
        scores["champion"] = {"rouge_l": theirs.rouge_l, "loss": theirs.loss}
    verdict = "promoted to champion" if decision.promoted else "not promoted"
    create_markdown_artifact(
        f"**{FINETUNED_MODEL} v{version}**: {verdict}. {decision.reason}.\n\n"
        + "\n".join(f"- {name}: {s}" for name, s in scores.items()),
        key="finetune-gate",
    )
    get_run_logger().info("%s v%s %s: %s", FINETUNED_MODEL, version, verdict, decision.reason)
    return EvaluateResult(scores=scores, version=version, promoted=decision.promoted, reason=decision.reason)


@flow(name="fine-tuning", log_prints=False)
def fine_tuning_flow(params: FineTuningParams = FineTuningParams()) -> FineTuningResult:
    """Ingest, (review,) build and validate the dataset, train, evaluate and gate."""
    backend = _backend(params.backend)
    if backend == "local":
        _base_dir(params.base)  # no base model fails before any work
    ingested = ingest_flow(IngestParams(source=params.source))
    dataset = dataset_flow(
        DatasetParams(source=params.source, review=params.review, backend=backend, base=params.base)
    )
    trained = train_flow(
        TrainParams(
            source=params.source,
            backend=backend,
            base=params.base,
            run=params.run,
            steps=params.steps,
            merge=params.merge,
        )
    )
    evaluated = evaluate_flow(EvaluateParams(source=params.source, mlflow_run_id=trained.mlflow_run_id))
    return FineTuningResult(ingest=ingested, dataset=dataset, train=trained, evaluate=evaluated)


if __name__ == "__main__":
    fine_tuning_flow()
