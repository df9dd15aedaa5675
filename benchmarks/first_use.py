"""What a user meets first, each beside what it would cost without mlstack:

- `mlstack --help` as a fresh process, against a bare `python -c pass` (the interpreter alone);
- `mlstack up` in a fresh data dir to all its services answering, against a plain
  `prefect server start` on SQLite; then the memory of everything `up` started, summed over
  each service's process tree as PSS (shared pages counted once, so the sum is what the machine
  holds; RSS double-counts Postgres' shared buffers across its backends);
- `mlstack demo` (what `make demo` runs after the install), with its default options, in a fresh
  data dir; `--no-demo` leaves it out (the smoke run does).

Ports are free ones, and `mlstack down` stops what was started. The last line is JSON. Targets
(2 cores): demo_s <= 300, help_s <= 0.5, up_ready_s <= 20, up_resident_mb <= 1500.

    python benchmarks/first_use.py [--no-demo] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import console, report, scratch
from deploy import mlstack, plain_prefect_start


def timed(command: list[str], env: dict[str, str], repeats: int) -> float:
    """Median wall time of a fresh process."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, env=env, capture_output=True, check=True, timeout=120)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def stack_memory_mb(home: Path) -> dict[str, dict[str, float]]:
    """PSS and RSS (MB) of each recorded service's process tree."""
    import psutil

    memory = {}
    for record in sorted((home / "stack").glob("*.json")):
        pid = json.loads(record.read_text()).get("pid")
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except (psutil.NoSuchProcess, TypeError):
            continue
        pss = rss = 0.0
        for process in tree:
            try:
                info = process.memory_full_info()
            except psutil.NoSuchProcess:
                continue
            pss, rss = pss + info.pss / 2**20, rss + info.rss / 2**20
        memory[record.stem] = {"pss_mb": round(pss, 1), "rss_mb": round(rss, 1), "processes": len(tree)}
    return memory


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs of each fresh process; medians")
    parser.add_argument("--demo", action=argparse.BooleanOptionalAction, default=True, help="time the demo")
    args = parser.parse_args()

    from mlstack import processes

    tmp = scratch("first")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLSTACK_"))}
    env |= {
        "MLSTACK_HOME": str(tmp / "home"),
        "MLSTACK_ORCHESTRATION_PREFECT_PORT": str(processes.free_port()),
        "MLSTACK_ORCHESTRATION_MLFLOW_PORT": str(processes.free_port()),
        "MLSTACK_ORCHESTRATION_EVIDENTLY_PORT": str(processes.free_port()),
    }
    console.print("`mlstack --help` and `python -c pass` ...")
    help_s = timed([processes.console_script("mlstack"), "--help"], env, args.repeats)
    python_s = timed([sys.executable, "-c", "pass"], env, args.repeats)

    console.print("plain `prefect server start` (SQLite) ...")
    plain_s = plain_prefect_start(tmp)
    console.print("`mlstack up` in a fresh data dir ...")
    demo_s = None
    started = time.perf_counter()
    mlstack(env, "up")
    up_s = time.perf_counter() - started
    try:
        memory = stack_memory_mb(tmp / "home")
        if args.demo:
            console.print("`mlstack demo` (defaults) on those services; minutes ...")
            started = time.perf_counter()
            mlstack(env, "demo")
            demo_s = time.perf_counter() - started
    finally:
        mlstack(env, "down")
    up_pss = sum(m["pss_mb"] for m in memory.values())
    result = {
        "bench": "first_use",
        "demo_s": None if demo_s is None else round(demo_s, 1),
        "help_s": round(help_s, 3),
        "python_start_s": round(python_s, 3),
        "up_ready_s": round(up_s, 2),
        "plain_prefect_start_s": round(plain_s, 2),
        "up_resident_mb": round(up_pss, 1),
        "up_memory": memory,
        "repeats": args.repeats,
    }
    used = memory.items()
    rows = [
        ("`mlstack --help`", f"{help_s:.2f} s", f"`python -c pass` {python_s:.2f} s"),
        ("`mlstack up`, all services answering", f"{up_s:.1f} s", f"`prefect server start` {plain_s:.1f} s"),
        ("memory of what `up` started (PSS)", f"{up_pss:,.0f} MB", ""),
        *[(f"  {name}", f"{mb['pss_mb']:,.0f} MB", f"{mb['processes']} processes") for name, mb in used],
        ("`mlstack demo`", "not run" if demo_s is None else f"{demo_s:.0f} s", ""),
    ]
    report("what a user meets first", rows, ("what", "mlstack", "baseline"), result)


if __name__ == "__main__":
    main()
