"""`mlstack demo`: every pattern end to end on embedded services, and where to look afterwards."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlstack.cli.options import build
from mlstack.cli.prompt_engineering import checks_line
from mlstack.cli.render import JSON, err, show
from mlstack.cli.retraining import retraining_line
from mlstack.cli.running import run_flow

if TYPE_CHECKING:
    from flows.demo import DemoResult, LiveWindowResult

app = typer.Typer()


@app.command()
def demo(
    days: int = typer.Option(14, help="Days of example data to generate (at least 3)."),
    trials: int | None = typer.Option(None, help="Optuna trials. Default: params.yaml."),
    pretrain_steps: int | None = typer.Option(
        None,
        help="Steps of the tiny code model's pretraining. Default: the tiny preset's (minutes on a CPU).",
    ),
    finetune_steps: int | None = typer.Option(
        None, help="LoRA steps of the fine-tuning stage. Default: the demo's (a minute on a CPU)."
    ),
    start_stack: bool = typer.Option(
        True,
        "--up/--no-up",
        help="Start `mlstack up`'s services first (or use those running) and leave them running, so"
        " the runs stay in the Prefect UI and every link printed opens after the demo; `mlstack down`"
        " stops them. --no-up runs on the commands' local Prefect API, which stops itself when unused.",
    ),
    as_json: bool = JSON,
) -> None:
    """Run the classic ML loop end to end on embedded services, then two live windows (normal,
    then drifting) through monitoring and retraining; pretrain a tiny code model that becomes the
    local model; ask it a question; refresh and ask RAG; fine-tune it with LoRA on the sample's
    GitHub Q&A and show the gate's decision; and say where to look.

    With PREFECT_API_URL set, the runs go to that API and no Prefect server is started."""
    import os

    from flows.demo import DemoParams, demo_flow

    tuning = {"finetune_steps": finetune_steps} if finetune_steps else {}
    params = build(DemoParams, days=days, trials=trials, pretrain_steps=pretrain_steps, **tuning)
    # After the options are checked, and before anything starts: a refused one starts nothing.
    from mlstack import extras

    extras.require("llm")  # pretraining, RAG and fine-tuning are stages of the demo
    if start_stack and not os.environ.get("PREFECT_API_URL"):
        from mlstack.cli.deploy import render_stack
        from mlstack.deploy import stack
        from mlstack.settings import get_settings

        err.print(Text(render_stack(stack.up(get_settings()))), highlight=False)
    show(run_flow(demo_flow, params), render_demo, as_json)


def window_story(window: LiveWindowResult) -> str:
    result = window.monitoring
    days = f"{window.scenario} {result.start:%Y-%m-%d} to {result.end:%Y-%m-%d}"
    if result.status == "skipped" or result.drift is None:
        return f"{days}: skipped ({result.skipped_because})"
    if result.status != "drift":
        moved = len(result.drift.drifted_columns)
        return f"{days}: no drift on v{result.version} ({moved} column(s) moved, below the threshold)"
    lines = [f"{days}: drift on v{result.version}", *result.drift.reasons]
    lines += [f"alert -> {d.target}" for d in result.alerts if d.ok]
    if result.retraining or result.retraining_failed:
        lines.append(retraining_line(result.retraining, result.retraining_failed))
    lines.append(f"report: {result.drift.reports.get('drift', '')}")
    return "\n".join(lines)


def render_demo(result: DemoResult) -> RenderableType:
    training, batch, online = result.training, result.batch_inference, result.online.response
    asked = result.prompt_engineering
    answer = " ".join(asked.answer.split())
    story = Table("stage", "outcome", title="What happened", show_lines=False)
    story.columns[1].overflow = "fold"
    rows = {
        "data": f"{len(result.data.validated)} validated tables",
        "features": f"{', '.join(result.features.views)} online up to {result.features.online_until}",
        "training": f"v{training.version} test MAE {training.test_mae:.0f}s; "
        f"{'champion' if training.promoted else 'not promoted'} ({training.reason})",
        "batch inference": f"{batch.rows:,} predictions by v{', v'.join(batch.model_versions)}",
        "online": f"{online.predicted_duration_s:.0f}s predicted by v{online.model_version}",
        "baseline window": window_story(result.baseline_window),
        "drift window": window_story(result.drift_window),
        "prompt engineering": f"{asked.context}: {asked.question} -> {answer[:80]!r}"
        f"{'...' if len(answer) > 80 else ''}; asked {asked.model} via {asked.provider} with"
        f" {asked.prompt}: {checks_line(asked.checks)}"
        + ("" if asked.meaningful else " (a base model that does not follow instructions: not an answer)"),
    }
    pretrained = result.pretraining
    rows["pretraining"] = (
        f"{pretrained.prepare.documents_kept} files, {pretrained.tokenize.train_tokens:,} tokens;"
        f" {pretrained.train.parameters:,} parameters, {pretrained.train.steps} steps: validation perplexity"
        f" {pretrained.evaluate.val_perplexity:.1f}, {pretrained.evaluate.parse_share:.0%} of completions"
        f" parse; code_lm v{pretrained.evaluate.version}"
        f" {'champion' if pretrained.evaluate.promoted else 'not promoted'}"
    )
    rag = result.rag
    rows["RAG"] = (
        f"{result.rag_refresh.documents} documents, {result.rag_refresh.chunks} chunks in"
        f" {result.rag_refresh.collection}; {rag.question} -> {' '.join(rag.answer.split())[:160]}"
        + "".join(f" [{c.n}] {c.title[:50]}" for c in rag.citations)
    )
    tuned = result.fine_tuning
    metrics = tuned.train.metrics
    rows["fine-tuning"] = (
        f"{tuned.ingest.pairs} Q&A pairs in {len(tuned.ingest.partitions)} monthly partitions;"
        f" {tuned.dataset.train} training / {tuned.dataset.validation} validation examples; LoRA on"
        f" {metrics.get('trainable_fraction', 0):.1%} of the weights, validation loss"
        f" {metrics.get('val_loss_before', 0):.2f} -> {metrics.get('val_loss_after', 0):.2f};"
        f" support_lm v{tuned.evaluate.version} {'champion' if tuned.evaluate.promoted else 'not promoted'}"
        f" ({tuned.evaluate.reason})"
    )
    for stage, outcome in rows.items():
        story.add_row(stage, outcome)
    where = Table("what", "where", title="Where to look")
    where.columns[1].overflow = "fold"  # paths are for copying: never cut them short
    for what, path in result.where.items():
        where.add_row(what, path)
    return Group(story, where)
