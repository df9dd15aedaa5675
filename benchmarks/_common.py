"""Shared set-up for the benchmarks: a data dir with validated data, features and a champion."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results

console = Console(stderr=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(latencies_s: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(latencies_s, 0.5) * 1000, 3),
        "p99_ms": round(percentile(latencies_s, 0.99) * 1000, 3),
        "mean_ms": round(statistics.fmean(latencies_s) * 1000, 3),
    }


def prepared_home(days: int = 10, trials: int = 2) -> Path:
    """Use MLSTACK_HOME if it already has a champion; else build one there (when set) or in a
    temporary data dir, so that a series of benchmarks can share one."""
    if os.environ.get("MLSTACK_HOME") and (Path(os.environ["MLSTACK_HOME"]) / "feast" / "online.db").exists():
        return Path(os.environ["MLSTACK_HOME"])
    home = own_home()
    console.print(f"preparing a data dir with {days} days of data and a champion in {home} ...")
    from flows.data import DataParams, data_flow
    from flows.features import features_flow
    from flows.training import TrainingParams, training_flow
    from mlstack.data.config import GeneratorConfig

    data_flow(DataParams(window=GeneratorConfig(days=days)))
    features_flow()
    training_flow(TrainingParams(n_trials=trials))
    return home


def own_home(name: str = "home") -> Path:
    """MLSTACK_HOME when set; else a temporary data dir, made MLSTACK_HOME for this run, whose
    services (its embedded Postgres, local API, warm process) stop when the run ends."""
    if os.environ.get("MLSTACK_HOME"):
        return Path(os.environ["MLSTACK_HOME"])
    home = scratch(name)
    os.environ["MLSTACK_HOME"] = str(home)
    atexit.register(_stop_services)  # registered after scratch's removal, so it runs before it
    return home


def scratch(name: str) -> Path:
    """A temporary folder, mlstack-bench-NAME-*, removed when the run ends. A benchmark's data dir
    runs to a GB (the RAG one's 100k chunks), and the suite's smoke tests run the benchmarks on
    every CI run: kept, they filled a CI machine's disk."""
    folder = Path(tempfile.mkdtemp(prefix=f"mlstack-bench-{name}-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _stop_services() -> None:
    """What a temporary data dir's runs started: its embedded Postgres, its local Prefect API and
    warm process. `mlstack down --postgres` in a process of its own: at exit this one can start
    no thread, which `down` uses."""
    import subprocess

    subprocess.run(
        [sys.executable, "-m", "mlstack.cli", "down", "--postgres"],
        env={**os.environ, "MLSTACK_ORCHESTRATION_WARM": "false"},
        capture_output=True,
        check=False,
    )


def report(
    title: str,
    rows: list[tuple[str, ...]],
    header: tuple[str, ...],
    result: dict,
    extra: list[tuple[str, list[tuple[str, str]]]] = (),
) -> None:
    """The comparison as a table (and any extra two-column tables), then the JSON line last; the
    result is kept in benchmarks/results/ (see _results.py)."""
    out = Console()
    table = Table(*header, title=title)
    for row in rows:
        table.add_row(*row)
    out.print(table)
    for extra_title, pairs in extra:
        more = Table("", "", title=extra_title, show_header=False)
        for pair in pairs:
            more.add_row(*pair)
        out.print(more)
    console.print(f"kept in {_results.write(result)}")
    print(json.dumps(result))
