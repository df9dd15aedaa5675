"""What Prefect costs: the training flow under Prefect against the same building blocks in plain
Python, on the same data with the same parameters.

Both sides run the same steps: point-in-time training set from Feast, Optuna trials logged to
MLflow, registration and the gate. The Prefect side runs on an already started API (the one-off
start of the ephemeral server is reported apart, as `cold_start_s`). Sides alternate and each
reports its best time.

What a user feels per command, too: `mlstack data flow --days 1 --append` (a day the data
dir holds: the same rows again), `mlstack monitor` (one day of batch predictions) and `mlstack rag ask
--extractive` (a collection of the README) as fresh processes, cold (nothing running: the
command starts the data dir's local Prefect API, and at its end the warm process) and warm (the
local API and the warm process running, after the warm process's first command, from which it
learns the imports a run makes: `mlstack.cli.warm`), against the same building blocks in a
fresh plain `python` process. Medians of `--command-repeats`; the differences are each
command's cost.

The last line is JSON. Targets: prefect_over_plain <= 1.15; each command <= 1 s over its blocks
warm (command_warm_over_plain_s, monitor_..., ask_...) and <= 3 s cold.

    python benchmarks/orchestration.py            # the training configured in params.yaml
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import console, prepared_home, report, scratch


def plain(trials: int) -> None:
    from mlstack import features, registry, tracking
    from mlstack.data import validation
    from mlstack.features import LABEL
    from mlstack.params import data_version, load_params
    from mlstack.settings import get_settings
    from models.tabular import registry as tabular_registry
    from models.tabular.train import features_of, train

    settings = get_settings()
    validated = settings.validated_dir
    params = load_params()["train"]
    frame = features.historical_features(
        features.feature_store(), validation.read_validated(validated)["trips"]
    )
    tracking.setup()
    result = train(
        frame,
        params["search_space"],
        trials,
        params["seed"],
        params["split"],
        data_version=data_version(validated),
    )
    version = registry.register(result.model_uri, result.run_id)
    test = result.splits.test
    tabular_registry.gate(version, features_of(test), test[LABEL], settings.tracking.promotion_margin)


# The blocks `mlstack data flow --days 1 --append` runs, as plain Python in a fresh process. The
# day is the generator's first, which a prepared data dir already holds: appending it replaces
# its rows with the same rows (same seed), so the data the training rounds read, or a user's
# MLSTACK_HOME holds, is kept.
PLAIN_DATA = """
from mlstack.data.config import GeneratorConfig
from mlstack.data.generator import generate, write_tables
from mlstack.data.validation import validate_paths, write_report, write_validated
from mlstack.settings import get_settings

settings = get_settings()
cfg = GeneratorConfig(days=1)
raw = write_tables(generate(cfg), settings.data_dir / "raw" / cfg.landing())
run = write_report(validate_paths(list(raw.values()), settings.data.max_bad_row_share),
                   settings.validation_reports_dir)
write_validated(run, settings.data_dir / "validated", append=True)
"""


# The blocks `mlstack monitor` runs (flows/monitoring.py without Prefect): the window, the check,
# the reports into MLflow, the workspace, the alert.
PLAIN_MONITOR = """
import sys
from datetime import datetime
from mlflow import MlflowClient
from mlstack import registry, tracking
from mlstack.settings import MODEL_NAME, get_settings
from mlstack.timewindow import TimeWindow
from models.tabular import registry as tabular_registry
from monitoring import alerts, workspace
from monitoring.drift import MONITORED, Thresholds, champion_window, check, summary_markdown
from monitoring.window import read_window

settings = get_settings()
bounds = TimeWindow(start=datetime.fromisoformat(sys.argv[1]), end=datetime.fromisoformat(sys.argv[2]))
tracking.setup(settings)
version = registry.alias_version(registry.CHAMPION)
window, _ = champion_window(read_window(settings, bounds), version, settings.monitoring.min_window_rows)
tags = workspace.window_tags(version, bounds.start, bounds.end)
folder = settings.monitoring_reports_dir / "plain"
result = check(tabular_registry.reference(version), window, Thresholds.from_settings(settings), folder,
               timestamp=bounds.end, tags=tags)
for path in result.reports.values():
    MlflowClient().log_artifact(registry.run_of(version), str(path), artifact_path="monitoring/plain")
workspace.add_window(settings.evidently_dir, MODEL_NAME, tags, result.snapshots, MONITORED)
if result.alert:
    alerts.send(alerts.drift_alert(result.summary(), version, bounds.start, bounds.end), settings)
summary_markdown(result, MODEL_NAME, version, bounds.start, bounds.end, {})
"""

# The blocks `mlstack rag ask --extractive` runs (flows/rag.py's rag_ask_flow without Prefect).
PLAIN_ASK = """
import sys
from mlstack.rag import answer as answering
from mlstack.rag import defaults, retrieve
from mlstack.settings import get_settings

settings = get_settings()
embedder = defaults.embedder(settings)
hits = retrieve.find(settings, embedder, settings.rag.collection, sys.argv[1], settings.rag.k, "hybrid")
answering.answer(
    sys.argv[1], hits, embedder, None, settings.rag.min_similarity, temperature=0.0, max_tokens=400
)
"""
QUESTION = "How do I start the Prefect UI?"


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:4]} failed: {done.stderr[-2000:]}")
    return elapsed


def wait_until(done: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"waited {timeout_s:g} s for {what}")
        time.sleep(0.05)


def commands(env: dict[str, str]) -> dict[str, tuple[list[str], list[str]]]:
    """Each command measured, as (the mlstack command, its blocks in a plain process); the
    monitored window (a day of batch predictions) and the RAG collection (the README) are made first."""
    import pandas as pd

    from mlstack.data import validation
    from mlstack.settings import get_settings

    cli = [sys.executable, "-m", "mlstack.cli"]
    start = validation.read_validated(get_settings().validated_dir)["trips"]["requested_at"].max().floor("D")
    end = start + pd.Timedelta(days=1)  # the last day with trips
    window = [f"{start:%Y-%m-%d}", f"{end:%Y-%m-%d}"]
    console.print("predictions for the monitored day, and a RAG collection of the README ...")
    timed([*cli, "predict-batch", "--start", window[0], "--end", window[1]], env)
    folder = scratch("docs")
    shutil.copy(Path(__file__).parent.parent / "README.md", folder)  # a small collection: the README
    timed([*cli, "rag", "refresh", "--source", f"docs:{folder}"], env)
    return {
        "data": (
            [*cli, "data", "flow", "--days", "1", "--append"],
            [sys.executable, "-c", PLAIN_DATA],
        ),
        "monitor": (
            [*cli, "monitor", "--window-start", window[0], "--window-end", window[1]],
            [sys.executable, "-c", PLAIN_MONITOR, *window],
        ),
        "ask": ([*cli, "rag", "ask", "--extractive", QUESTION], [sys.executable, "-c", PLAIN_ASK, QUESTION]),
    }


def per_command(repeats: int) -> dict[str, dict[str, float]]:
    """Seconds of each command cold (no local API running) and warm, and of its blocks in plain
    Python, each a fresh process; medians."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["MLSTACK_ORCHESTRATION_WARM"] = "true"  # the default, which the test suite turns off
    down = [sys.executable, "-m", "mlstack.cli", "down"]
    try:
        return {
            name: sides(command, blocks, env, down, repeats)
            for name, (command, blocks) in commands(env).items()
        }
    finally:
        subprocess.run(down, env=env, capture_output=True)


def sides(command: list[str], blocks: list[str], env: dict[str, str], down: list[str], repeats: int) -> dict:
    from mlstack.cli import warm
    from mlstack.settings import get_settings

    plain_runs, cold_runs, warm_runs = [], [], []
    stack_dir = get_settings().stack_dir
    log = stack_dir / f"{warm.NAME}.log"

    def listening() -> bool:  # the record the command left names its socket
        return any(
            warm.answers(record.stem.removeprefix(f"{warm.NAME}-"), env)
            for record in stack_dir.glob(f"{warm.NAME}-*.json")
        )

    for _ in range(repeats):
        timed(down, env)  # nothing running: the next command starts the API and the warm process
        cold_runs.append(timed(command, env))
        wait_until(listening, "the warm process to listen")
        learned = log.read_text().count("learned ")
        timed(command, env)  # its first command, whose run-time imports it then makes its own
        wait_until(lambda n=learned: log.read_text().count("learned ") > n, "the warm process to learn")
        warm_runs.append(timed(command, env))
        plain_runs.append(timed(blocks, env))
    return {
        "plain": statistics.median(plain_runs),
        "cold": statistics.median(cold_runs),
        "warm": statistics.median(warm_runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--trials", type=int, default=None, help="Optuna trials per run (default: params.yaml)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per side")
    parser.add_argument(
        "--command-repeats", type=int, default=3, help="runs of each side of the per-command comparison"
    )
    args = parser.parse_args()

    prepared_home()
    import mlstack.bootstrap  # noqa: F401

    from mlstack.params import load_params

    trials = args.trials or load_params()["train"]["n_trials"]

    from prefect import flow

    from flows.training import TrainingParams, training_flow

    @flow
    def warm_up() -> None:
        """Starts the ephemeral API, which the training flow then reuses."""

    t0 = time.perf_counter()
    warm_up()
    cold_start = time.perf_counter() - t0
    plain(1)  # warm the plain side's imports and caches the same way

    times: dict[str, list[float]] = {"plain": [], "prefect": []}
    for round_ in range(args.rounds):
        for side in ("plain", "prefect"):
            console.print(f"round {round_ + 1}: {side} ...")
            t0 = time.perf_counter()
            if side == "plain":
                plain(trials)
            else:
                training_flow(TrainingParams(n_trials=trials))
            times[side].append(time.perf_counter() - t0)

    console.print(f"per command: cold, warm and plain, {args.command_repeats} times ...")
    measured = per_command(args.command_repeats)
    command = measured["data"]
    best = {side: min(values) for side, values in times.items()}
    result = {
        "bench": "orchestration",
        "prefect_over_plain": round(best["prefect"] / best["plain"], 3),
        "plain_s": round(best["plain"], 2),
        "prefect_s": round(best["prefect"], 2),
        "cold_start_s": round(cold_start, 2),
        "trials": trials,
        "rounds": args.rounds,
        "command_plain_s": round(command["plain"], 2),
        "command_cold_s": round(command["cold"], 2),
        "command_warm_s": round(command["warm"], 2),
        "command_cold_over_plain_s": round(command["cold"] - command["plain"], 2),
        "command_warm_over_plain_s": round(command["warm"] - command["plain"], 2),
        "monitor_plain_s": round(measured["monitor"]["plain"], 2),
        "monitor_cold_over_plain_s": round(measured["monitor"]["cold"] - measured["monitor"]["plain"], 2),
        "monitor_warm_over_plain_s": round(measured["monitor"]["warm"] - measured["monitor"]["plain"], 2),
        "ask_plain_s": round(measured["ask"]["plain"], 2),
        "ask_cold_over_plain_s": round(measured["ask"]["cold"] - measured["ask"]["plain"], 2),
        "ask_warm_over_plain_s": round(measured["ask"]["warm"] - measured["ask"]["plain"], 2),
    }
    report(
        "training: Prefect flow vs plain Python (best of each)",
        [
            ("plain Python", f"{best['plain']:.2f}", ", ".join(f"{t:.1f}" for t in times["plain"])),
            ("Prefect flow", f"{best['prefect']:.2f}", ", ".join(f"{t:.1f}" for t in times["prefect"])),
            ("ephemeral API start (once)", f"{cold_start:.2f}", ""),
            ("`data flow --days 1`: plain python process", f"{command['plain']:.2f}", "median"),
            ("`mlstack data flow --days 1`, cold (starts the API)", f"{command['cold']:.2f}", "median"),
            ("`mlstack data flow --days 1`, warm (reuses it)", f"{command['warm']:.2f}", "median"),
            *[
                (f"`mlstack {label}`: {side}", f"{measured[name][side]:.2f}", "median")
                for name, label in (("monitor", "monitor"), ("ask", "rag ask --extractive"))
                for side in ("plain", "cold", "warm")
            ],
        ],
        ("side", "best s", "all runs s"),
        result,
    )


if __name__ == "__main__":
    main()
