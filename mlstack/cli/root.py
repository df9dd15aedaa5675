"""The `mlstack` command: `info` and `demo` here, and every command group registered below.

Each group is a module of this package; heavy libraries are imported inside the commands, so
`mlstack --help` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlstack.cli import (
    batch_inference,
    data,
    deploy,
    features,
    fine_tuning,
    monitoring,
    pretraining,
    prompt_engineering,
    rag,
    serving,
    training,
)
from mlstack.cli.monitoring import retraining_line
from mlstack.cli.prompt_engineering import checks_line
from mlstack.cli.render import JSON, Boundary, build, console, fail, run_flow, show

if TYPE_CHECKING:
    from flows.demo import DemoResult, LiveWindowResult
    from mlstack.services import InfoResult

app = typer.Typer(
    name="mlstack",
    cls=Boundary,
    help="mlstack: a Prefect-native reference stack for AI and ML, runnable offline.\n\n"
    "Start with `mlstack demo`, then `mlstack info` to see where everything lives.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            console.print(f"mlstack {version('mlstack')}", highlight=False)
        except PackageNotFoundError:  # run from a checkout that was never installed
            console.print("mlstack (not installed: run `make test` or `pip install -e .`)", highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """mlstack: a Prefect-native reference stack for AI and ML, runnable offline."""


app.add_typer(data.app, name="data")
app.add_typer(features.app, name="features")
app.add_typer(rag.app, name="rag")
app.add_typer(pretraining.app, name="pretrain")
app.add_typer(fine_tuning.app, name="finetune")
for group in (training, batch_inference, monitoring, prompt_engineering, serving, deploy):
    app.add_typer(group.app)


@app.command()
def info(as_json: bool = JSON) -> None:
    """Show the resolved settings, section by section, and each backing service. A service the
    settings point at (MLSTACK_PG_DSN, MLFLOW_TRACKING_URI, PREFECT_API_URL, OPENAI_BASE_URL or
    OPENAI_API_KEY) is asked whether it answers, and the command exits 1 when one does not;
    an unset one is shown as unset, with the embedded default that stands in."""
    from mlstack.services import info as read_info
    from mlstack.settings import get_settings

    result = read_info(get_settings())
    show(result, render_info, as_json)
    if not result.ok:
        down = ", ".join(row.service for row in result.services if row.ok is False)
        raise fail(f"configured but not answering: {down}; fix the setting or start the service")


def render_info(result: InfoResult) -> RenderableType:
    table = Table("section", "setting", "value", "from", title="Settings")
    for row in result.settings:
        table.add_row(row.section, row.name, row.value, row.source)
    status = Table("service", "mode", "status", title="Services")
    marks = {True: "[green]ok[/] ", False: "[bold red]down[/] ", None: ""}
    for service in result.services:
        status.add_row(service.service, service.mode, Text.from_markup(marks[service.ok]) + service.status)
    return Group(table, status)


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
    as_json: bool = JSON,
) -> None:
    """Run the classic ML loop end to end on embedded services, then two live windows (normal,
    then drifting) through monitoring and retraining; pretrain a tiny code model that becomes the
    local model; ask it a question; refresh and ask RAG; fine-tune it with LoRA on the sample's
    GitHub Q&A and show the gate's decision; and say where to look."""
    from flows.demo import DemoParams, demo_flow

    tuning = {"finetune_steps": finetune_steps} if finetune_steps else {}
    params = build(DemoParams, days=days, trials=trials, pretrain_steps=pretrain_steps, **tuning)
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
