"""The `mlstack` command. Heavy libraries are imported inside each command, so `--help` is instant."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

import typer
from rich.console import Console
from rich.table import Table

from mlstack.data.generator import SCENARIOS

console = Console()
err = Console(stderr=True)

app = typer.Typer(
    name="mlstack",
    help="mlstack: a Prefect-native reference stack for AI and ML, runnable offline.\n\n"
    "Start with `mlstack demo`, then `mlstack info` to see where everything lives.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
data_app = typer.Typer(
    help="Generate, validate and version the ride-hailing example data.", no_args_is_help=True
)
app.add_typer(data_app, name="data")
features_app = typer.Typer(help="The Feast feature store: build, apply, materialize.", no_args_is_help=True)
app.add_typer(features_app, name="features")
model_app = typer.Typer(help="The trip_duration model in the MLflow registry.", no_args_is_help=True)
app.add_typer(model_app, name="model")

Scenario = StrEnum("Scenario", {name: name for name in SCENARIOS})  # type: ignore[misc]
DEFAULT_START = "2026-09-01"


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@data_app.command("generate")
def data_generate(
    scenario: Scenario = typer.Option(
        "baseline", help="What the window looks like: normal, or one kind of drift or breakage."
    ),
    start: datetime = typer.Option(DEFAULT_START, formats=["%Y-%m-%d"], help="First day (UTC)."),
    days: int = typer.Option(14, min=1, help="Number of days to generate."),
    seed: int = typer.Option(42, help="Random seed: the same seed gives byte-identical files."),
    out: Path | None = typer.Option(None, help="Output folder. Default: raw/ in the data dir."),
    drivers: int = typer.Option(200, min=1, help="Number of drivers."),
    trips_per_day: int = typer.Option(2000, min=1, help="Mean trips per weekday."),
    bad_row_rate: float = typer.Option(
        0.002, min=0.0, max=0.49, help="Share of trips spoiled like a live feed (null label, etc.)."
    ),
) -> None:
    """Write trips, hourly driver stats and zone stats as parquet.

    Scenarios: **baseline**; **covariate_drift** (longer trips from the outskirts, bigger groups);
    **concept_drift** (same inputs, slower trips); **missing_surge** (optional fields go missing);
    **schema_change** (renamed and retyped columns upstream).
    """
    from rich.progress import Progress

    from mlstack.data.generator import GeneratorConfig, generate, write_tables
    from mlstack.settings import get_settings

    cfg = GeneratorConfig(
        scenario=str(scenario),
        start=start.date(),
        days=days,
        seed=seed,
        n_drivers=drivers,
        trips_per_day=trips_per_day,
        bad_row_rate=bad_row_rate,
    )
    out = out or get_settings().raw_dir
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(f"generating {cfg.scenario}", total=cfg.days)
        tables = generate(cfg, on_day=lambda _day: progress.advance(task))
    paths = write_tables(tables, out)
    table = Table(
        "table", "rows", "file", title=f"{cfg.scenario}: {cfg.start} + {cfg.days} day(s), seed {seed}"
    )
    for name, path in paths.items():
        table.add_row(name, f"{len(tables[name]):,}", str(path))
    console.print(table)


@data_app.command("validate")
def data_validate(
    paths: list[Path] = typer.Argument(..., help="Parquet files, or folders of them."),
    out: Path | None = typer.Option(
        None, help="Write the valid rows here, only if every table passes. Default: write nothing."
    ),
    report_dir: Path | None = typer.Option(
        None,
        help="Folder for the JSON/HTML report and quarantine files. Default: reports/validation/.",
    ),
    metrics: Path | None = typer.Option(None, help="Also write counts to this JSON metrics file (DVC)."),
    max_bad_row_share: float | None = typer.Option(
        None,
        min=0.0,
        max=1.0,
        help="Share of bad rows allowed per table. Default: MLSTACK_MAX_BAD_ROW_SHARE.",
    ),
    table: str | None = typer.Option(
        None, help="Contract to apply to every file. Default: from each file name (trips, ...)."
    ),
) -> None:
    """Check tables against their contracts; quarantine bad rows; exit 1 if the stage must stop.

    Structural problems (missing, renamed or retyped columns, empty files) and statistical ones
    (null surges, shifted ranges, unknown categories) fail. Bad rows (null labels, negative
    distances, future timestamps) are quarantined while their share stays under the threshold.
    """
    from mlstack.data.validation import validate_paths, write_report, write_validated
    from mlstack.io import write_json
    from mlstack.settings import get_settings

    settings = get_settings()
    share = settings.max_bad_row_share if max_bad_row_share is None else max_bad_row_share
    try:
        run = validate_paths(paths, share, table)
    except FileNotFoundError as exc:
        raise _fail(f"{exc}. Pass parquet files or folders that hold them.", code=2) from None
    write_report(run, report_dir or settings.validation_reports_dir)
    if metrics:
        write_json(run.metrics(), metrics)

    summary = Table("table", "rows", "quarantined", "status", "problem")
    colour = {"passed": "green", "quarantined": "yellow", "failed": "red"}
    for result in run.results:
        summary.add_row(
            result.table,
            f"{result.rows:,}",
            f"{result.bad_rows:,} ({result.bad_share:.2%})",
            f"[{colour[result.status]}]{result.status}[/]",
            result.reason() or "",
        )
    console.print(summary)
    if not run.ok:
        raise _fail(run.summary())
    if out:
        write_validated(run, out)
        console.print(f"validated data written to {out}")
    console.print(run.summary(), highlight=False, soft_wrap=True)


@data_app.command("flow")
def data_flow_command(
    scenario: Scenario = typer.Option("baseline", help="Scenario to generate."),
    start: datetime = typer.Option(DEFAULT_START, formats=["%Y-%m-%d"], help="First day (UTC)."),
    days: int = typer.Option(14, min=1, help="Number of days."),
    seed: int = typer.Option(42, help="Random seed."),
    append: bool = typer.Option(
        False, "--append", help="Land the window beside the validated data instead of replacing it."
    ),
) -> None:
    """Run the data flow under Prefect: generate, validate, write validated data."""
    from flows.data import data_flow
    from flows.runtime import run_flow

    run_flow(data_flow, scenario=str(scenario), start=start.date(), days=days, seed=seed, append=append)


@features_app.command("apply")
def features_apply(
    validated: Path | None = typer.Option(
        None, help="Validated data folder. Default: validated/ in the data dir."
    ),
    export: Path | None = typer.Option(None, help="Also copy the offline tables here (a DVC output)."),
) -> None:
    """Build the offline feature tables from validated data and register the Feast definitions."""
    from mlstack import features
    from mlstack.io import write_parquet
    from mlstack.settings import get_settings

    folder = validated or get_settings().validated_dir
    if not (folder / "trips.parquet").is_file():
        raise _fail(f"{folder} holds no validated data. Run `mlstack data flow` (or `mlstack demo`) first.")
    tables = features.build_feature_tables(features.read_validated(folder))
    paths = features.write_feature_tables(tables)
    if export:
        for name, df in tables.items():
            write_parquet(df, export / f"{name}.parquet")
    store = features.feature_store()
    features.apply(store)
    tables_at = ", ".join(map(str, paths.values()))
    console.print(f"applied {len(features.definitions())} Feast objects; offline tables: {tables_at}")


@features_app.command("materialize")
def features_materialize() -> None:
    """Load the online store up to the newest offline reading (incremental after the first run)."""
    from mlstack import features

    try:
        loaded_until = features.materialize_offline(features.feature_store())
    except FileNotFoundError as exc:
        raise _fail(str(exc)) from None
    console.print(f"online store loaded up to {loaded_until}")


@app.command()
def train(
    trials: int | None = typer.Option(
        None, min=1, help="Optuna trials. Default: train.n_trials in params.yaml."
    ),
    out: Path | None = typer.Option(None, help="Also export the trained MLflow model folder here (DVC)."),
    metrics: Path | None = typer.Option(None, help="Also write the run's metrics here as JSON (DVC)."),
    validated: Path | None = typer.Option(
        None, help="Validated data folder. Default: validated/ in the data dir."
    ),
) -> None:
    """Tune and train under Prefect, register as challenger, promote only if it beats the champion."""
    from flows.runtime import run_flow
    from flows.training import training_flow

    result = run_flow(training_flow, n_trials=trials, validated_dir=validated)
    if out:
        import shutil

        import mlflow

        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        mlflow.artifacts.download_artifacts(f"models:/trip_duration/{result['version']}", dst_path=str(out))
    if metrics:
        from mlstack.io import write_json

        write_json({k: v for k, v in result.items() if k != "params"}, metrics)
    console.print(
        f"v{result['version']}: validation MAE {result['val_mae']:.1f}s, test MAE {result['test_mae']:.1f}s; "
        f"{'promoted to champion' if result['promoted'] else 'not promoted'} ({result['reason']})",
        highlight=False,
    )


WINDOW_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]


@app.command()
def monitor(
    window_start: datetime = typer.Option(..., formats=WINDOW_FORMATS, help="Window start (UTC)."),
    window_end: datetime = typer.Option(..., formats=WINDOW_FORMATS, help="Window end (UTC), exclusive."),
    retrain: bool | None = typer.Option(
        None, "--retrain/--no-retrain", help="Retrain on drift. Default: MLSTACK_RETRAIN_ON_DRIFT."
    ),
) -> None:
    """Check a window of batch and online predictions for drift against the champion's training
    data; on drift, alert (MLSTACK_ALERT_URLS and the data dir's alerts.jsonl), emit the Prefect
    event mlstack.drift.detected, and optionally retrain. Exits 0 with or without drift, and 1
    when the window cannot be judged (its columns differ from the reference)."""
    from datetime import UTC

    from flows.monitoring import monitoring_flow
    from flows.runtime import run_flow

    result = run_flow(
        monitoring_flow,
        start=window_start.replace(tzinfo=UTC),
        end=window_end.replace(tzinfo=UTC),
        retrain=retrain,
    )
    if result["status"] == "skipped":
        console.print(f"[yellow]window skipped:[/] {result['reason']}", highlight=False)
        return
    verdict = "[bold red]drift detected[/]" if result["alert"] else "[green]no drift[/]"
    console.print(f"v{result['version']}: {verdict}", highlight=False)
    for reason in result["reasons"]:
        console.print(f"  - {reason}", highlight=False)
    for name, path in result["reports"].items():
        console.print(f"  {name}: {path}", highlight=False)
    for delivery in result["alerts"]:
        state = "sent" if delivery["ok"] else f"[red]failed[/] ({delivery['error']})"
        console.print(f"  alert to {delivery['target']}: {state}", highlight=False)
    if result["retraining"]:
        console.print(f"  {_retraining_line(result['retraining'])}", highlight=False)


def _retraining_line(result: dict) -> str:
    if "failed" in result:
        return f"retraining failed: {result['failed']}"
    champion = "n/a" if result["champion_mae"] is None else f"{result['champion_mae']:.1f}s"
    return (
        f"retrained v{result['version']}: MAE {result['challenger_mae']:.1f}s vs champion"
        f" v{result['champion_before']} {champion} on {result['holdout']}:"
        f" {'promoted' if result['promoted'] else 'champion kept'} ({result['reason']})"
    )


def _window_story(window: dict) -> str:
    days = f"{window['scenario']} {window['start'][:10]} to {window['end'][:10]}"
    if window["status"] != "drift":
        moved = len(window["drifted_columns"])
        return f"{days}: no drift on v{window['version']} ({moved} column(s) moved, below the threshold)"
    lines = [f"{days}: drift on v{window['version']}", *window["reasons"]]
    lines += [f"alert -> {d['target']}" for d in window["alerts"] if d["ok"]]
    if window["retraining"]:
        lines.append(_retraining_line(window["retraining"]))
    lines.append(f"report: {window['reports'].get('drift', '')}")
    return "\n".join(lines)


@app.command()
def retrain(
    until: datetime | None = typer.Option(
        None, formats=WINDOW_FORMATS, help="Train on labelled trips before this instant. Default: all."
    ),
    trials: int | None = typer.Option(
        None,
        min=0,
        help="Optuna trials from the champion's params; 0 reuses them. Default: MLSTACK_RETRAIN_TRIALS.",
    ),
) -> None:
    """Retrain with the champion's recipe, gate the result on the newest labelled hours
    (MLSTACK_RETRAIN_HOLDOUT_HOURS), promote or keep the champion, and alert with the decision."""
    from datetime import UTC

    from flows.retraining import retraining_flow
    from flows.runtime import run_flow

    result = run_flow(
        retraining_flow, until=until.replace(tzinfo=UTC) if until else None, n_trials=trials, reason="manual"
    )
    console.print(_retraining_line(result), highlight=False)


@app.command()
def evaluate(
    model: Path = typer.Option(..., help="An MLflow model folder, as `mlstack train --out` writes."),
    out: Path = typer.Option(..., help="Metrics JSON to write."),
    plots: Path = typer.Option(..., help="Folder for plot data (CSV) and PNGs."),
    validated: Path | None = typer.Option(
        None, help="Validated data folder. Default: validated/ in the data dir."
    ),
) -> None:
    """Score a model on the held-out test window (split by time, as in training)."""
    import mlflow

    from mlstack import features
    from mlstack.params import load_params
    from mlstack.settings import get_settings
    from models.tabular.evaluate import write_evaluation
    from models.tabular.train import features_of, split_by_time

    settings = get_settings()
    trips = features.read_validated(validated or settings.validated_dir)["trips"]
    frame = features.historical_features(features.feature_store(settings), trips)
    test = split_by_time(frame, **load_params()["train"]["split"]).test
    predicted = mlflow.sklearn.load_model(str(model)).predict(features_of(test))
    scores = write_evaluation(test[features.LABEL], predicted, test["requested_at"], out, plots)
    console.print(
        f"test MAE {scores.mae:.1f}s, RMSE {scores.rmse:.1f}s, R² {scores.r2:.3f} on {len(test):,} trips"
    )


@model_app.command("status")
def model_status() -> None:
    """Champion, challenger, every version's gate result, and which version served when."""
    from mlstack import tracking
    from models.tabular import registry

    tracking.setup()
    try:
        status = registry.status()
    except Exception as exc:
        raise _fail(
            f"no registered model yet ({exc.__class__.__name__}). Run `mlstack train` first."
        ) from None
    table = Table("version", "alias", "created", "gate", "test MAE (s)", title="trip_duration")
    for v in status["versions"]:
        alias = ", ".join(a for a in ("champion", "challenger") if status[a] == v["version"])
        table.add_row(v["version"], alias, v["created"], v["gate"], v["mae"])
    console.print(table)
    served = Table("version", "from", "until", "how", title="Served as champion")
    for stint in status["served"]:
        until = stint["until"][:19] if stint["until"] else "now"
        served.add_row(stint["version"], stint["from"][:19], until, stint["how"])
    console.print(served)


@model_app.command("promote")
def model_promote(version: str = typer.Argument(..., help="Registry version to make champion.")) -> None:
    """Make a version the champion by hand (recorded in the registry's history)."""
    from mlstack import tracking
    from models.tabular import registry

    tracking.setup()
    try:
        previous = registry.promote(version, reason="manual promote")
    except Exception as exc:
        raise _fail(str(exc)) from None
    console.print(f"v{version} is champion (was v{previous})")


@model_app.command("rollback")
def model_rollback() -> None:
    """Restore the champion that the current one replaced."""
    from mlstack import tracking
    from models.tabular import registry

    tracking.setup()
    try:
        restored, demoted = registry.rollback()
    except registry.RegistryError as exc:
        raise _fail(str(exc)) from None
    console.print(f"rolled back: v{restored} is champion again (v{demoted} demoted)")


@app.command("predict-batch")
def predict_batch(
    start: datetime = typer.Option(..., formats=WINDOW_FORMATS, help="Window start (UTC)."),
    end: datetime = typer.Option(..., formats=WINDOW_FORMATS, help="Window end, exclusive."),
) -> None:
    """Score trips requested in [start, end) with the champion; rerunning a window replaces it."""
    from datetime import UTC

    from flows.batch_inference import batch_inference_flow
    from flows.runtime import run_flow

    result = run_flow(batch_inference_flow, start=start.replace(tzinfo=UTC), end=end.replace(tzinfo=UTC))
    console.print(
        f"{result['rows']:,} predictions by v{', v'.join(result['model_versions'])} -> {result['parquet']} "
        "and Postgres table trip_predictions",
        highlight=False,
    )


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, help="Port."),
    workers: int = typer.Option(1, min=1, help="Worker processes; one per core is a good start."),
) -> None:
    """Serve POST /predict with Feast online features and the champion model (docs at /docs)."""
    import uvicorn

    console.print(f"serving trip_duration on http://{host}:{port} with {workers} worker(s) (docs at /docs)")
    uvicorn.run(
        "models.serving.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
    )


class Provider(StrEnum):
    openai = "openai"
    compatible = "openai-compatible"
    local = "local"


@app.command()
def ask(
    question: str | None = typer.Argument(None, help="The question. Leave out with --file."),
    context: str = typer.Option("Pandas", help="The domain the answer must stay in."),
    strict: bool = typer.Option(False, help="Fail (exit 1) when an answer fails its output checks."),
    file: Path | None = typer.Option(
        None, "--file", "-f", help="Questions to answer in a batch: .txt (one a line) or .jsonl."
    ),
    output: Path | None = typer.Option(None, help="Batch results (JSON lines). Default: under reports/."),
    concurrency: int | None = typer.Option(
        None, min=1, max=32, help="Batch questions in flight. Default: MLSTACK_ASK_CONCURRENCY."
    ),
    provider: Provider | None = typer.Option(None, help="Chat provider. Default: MLSTACK_LLM_PROVIDER."),
    model: str | None = typer.Option(None, help="Chat model. Default: MLSTACK_LLM_MODEL or the provider's."),
    prompt_version: str | None = typer.Option(
        None, help="A registered prompt version or alias. Default: the current template."
    ),
    temperature: float = typer.Option(0.0, min=0.0, max=2.0, help="0 answers greedily."),
    max_tokens: int = typer.Option(256, min=1, help="Longest answer, in tokens."),
) -> None:
    """Ask a question in the context of a domain (the prompt-engineering pattern).

    The answer is checked (one or two sentences, two well-formed links) and recorded in MLflow
    with the prompt version that produced it. With no OpenAI settings, a local model answers.
    Switch with one variable: `OPENAI_API_KEY=sk-...` for OpenAI, or
    `OPENAI_BASE_URL=http://localhost:11434/v1` for any OpenAI-compatible server.
    """
    from flows.prompt_engineering import (
        UNTRAINED_NOTE,
        prompt_engineering_batch_flow,
        prompt_engineering_flow,
    )
    from flows.runtime import run_flow

    if (question is None) == (file is None):
        raise _fail("give either a QUESTION or --file with questions, not both or neither")
    common = {
        "context": context,
        "strict": strict,
        "prompt_version": prompt_version,
        "provider": provider.value if provider else None,
        "model": model,
        "temperature": temperature,
        "max_tokens": max_tokens,
    }
    if file is not None:
        result = run_flow(
            prompt_engineering_batch_flow,
            questions_file=str(file),
            output=str(output) if output else None,
            concurrency=concurrency,
            **common,
        )
        table = Table("summary", "value", title=f"{file.name}: answers in {result['output']}")
        for key, value in result["summary"].items():
            table.add_row(key, str(value))
        console.print(table)
    else:
        result = run_flow(prompt_engineering_flow, question=question, **common)
        console.print(f"[bold]{context}:[/] {question}\n\n{result['answer']}\n", highlight=False)
        console.print(
            f"{_checks_line(result['checks'])}; prompt {result['prompt']}, {result['model']} via"
            f" {result['provider']}",
            highlight=False,
        )
    if not result["meaningful"]:
        console.print(f"[yellow]note:[/] {UNTRAINED_NOTE}", highlight=False)


def _checks_line(checks: dict) -> str:
    verdict = "passed" if checks["passed"] else "failed"
    return (
        f"checks {verdict} ({checks['sentences']} sentences, {checks['links']} links,"
        f" well-formed {str(checks['links_well_formed']).lower()})"
    )


@app.command("serve-llm")
def serve_llm(
    model: Path = typer.Option(
        ...,
        exists=True,
        file_okay=False,
        help="A Hugging Face causal-LM directory (config.json, weights, tokenizer).",
    ),
    name: str | None = typer.Option(None, help="Model id clients ask for. Default: the directory's name."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8001, help="Port."),
    log_level: str = typer.Option("info", help="uvicorn log level (warning hides request lines)."),
) -> None:
    """Serve a local model behind an OpenAI-compatible API: /v1/models, /v1/chat/completions
    (streaming too) and /v1/embeddings (the packaged all-MiniLM-L6-v2).

    Point any OpenAI client at it with `OPENAI_BASE_URL=http://HOST:PORT/v1`. While it runs,
    `mlstack ask` with the local provider and the same model directory reuses it.
    """
    import uvicorn

    from models.serving.openai_api import create_app

    if not (model / "config.json").is_file():
        raise _fail(f"{model} has no config.json: give a Hugging Face model directory")
    url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base_url = f"http://{url_host}:{port}/v1"
    api = create_app(model, name, announce_url=base_url)
    console.print(f"serving {model} as an OpenAI-compatible API on {base_url} (docs at /docs)")
    uvicorn.run(api, host=host, port=port, log_level=log_level)


@app.command()
def info() -> None:
    """Show the resolved settings and the state of each backing service."""
    from mlstack.services import collect_status

    settings_table, services_table = collect_status()
    console.print(settings_table)
    console.print(services_table)


@app.command()
def demo(
    days: int = typer.Option(14, min=3, help="Days of example data to generate."),
    trials: int | None = typer.Option(None, min=1, help="Optuna trials. Default: params.yaml."),
) -> None:
    """Run the classic ML loop end to end on embedded services, then two live windows (normal,
    then drifting) through monitoring and retraining, and say where to look."""
    from flows.demo import demo_flow
    from flows.runtime import run_flow

    result = run_flow(demo_flow, days=days, trials=trials)
    training, online = result["training"], result["online"]["response"]
    story = Table("stage", "outcome", title="What happened", show_lines=False)
    story.columns[1].overflow = "fold"
    story.add_row("data", f"{len(result['data'])} validated tables")
    story.add_row(
        "features",
        f"{', '.join(result['features']['views'])} online up to {result['features']['online_until']}",
    )
    story.add_row(
        "training",
        f"v{training['version']} test MAE {training['test_mae']:.0f}s; "
        f"{'champion' if training['promoted'] else 'not promoted'} ({training['reason']})",
    )
    batch = result["batch inference"]
    story.add_row(
        "batch inference", f"{batch['rows']:,} predictions by v{', v'.join(batch['model_versions'])}"
    )
    story.add_row("online", f"{online['predicted_duration_s']:.0f}s predicted by v{online['model_version']}")
    for name in ("baseline window", "drift window"):
        story.add_row(name, _window_story(result[name]))
    asked = result["prompt engineering"]
    answer = " ".join(asked["answer"].split())
    story.add_row(
        "prompt engineering",
        f"{asked['context']}: {asked['question']} -> {answer[:80]!r}{'...' if len(answer) > 80 else ''}; "
        f"asked {asked['model']} via {asked['provider']} with {asked['prompt']}: "
        f"{_checks_line(asked['checks'])}"
        + ("" if asked["meaningful"] else " (untrained stand-in: its text is not meaningful)"),
    )
    console.print(story)
    where = Table("what", "where", title="Where to look")
    where.columns[1].overflow = "fold"  # paths are for copying: never cut them short
    for what, path in result["where"].items():
        where.add_row(what, path)
    console.print(where)


if __name__ == "__main__":
    app()
