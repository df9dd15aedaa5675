"""Webhooks on a running stack: a signed GitHub delivery to the issue being searchable, and a
burst of deliveries for one repository coalesced into a few refresh runs with nothing lost.

Side by side, in one run, on `mlstack up` (the receiver, the on-webhook trigger, the worker):
- delivery -> searchable (its chunks in pgvector), each round a new issue, against the
  refresh a schedule would have run: `mlstack rag refresh --source github:OWNER/REPO` of the
  same repository, plus the hourly schedule's mean wait (30 minutes);
- a burst of deliveries (10 per second) -> the refresh runs it started, against one run per
  delivery, and every issue searchable afterwards.

GitHub is a fake on loopback, shaped as its REST API (tests/mlstack/sources/fakes.py): no
machine running this reaches github.com.

    .venv/bin/python benchmarks/webhooks.py [--rounds 3] [--burst 100]

Targets on 2 cores: delivery -> searchable <= 30 s; the burst in <= 3 runs, none lost.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from mlstack import postgres, processes
from mlstack.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the fake GitHub
from _common import console, report, scratch
from deploy import Api, git_source, mlstack

from tests.mlstack.sources.fakes import GitHubIssues, serve
from tests.mlstack.webhooks.signing import github_headers, github_issue

REPOSITORY = "bench/webhooks"
SCHEDULE_MEAN_WAIT_S = 1800.0  # refresh-hourly: a change waits half an hour on average


def searchable(settings: Settings, numbers: list[int], word: str, timeout_s: float = 300) -> float:
    """Seconds until each issue's chunks hold `word`-N (its number): what a search reads."""
    started = time.perf_counter()
    wanted = {f"github:{REPOSITORY}#{n}" for n in numbers}
    while time.perf_counter() - started < timeout_s:
        with postgres.connect(settings, autocommit=True) as conn:
            try:
                rows = conn.execute(
                    "SELECT DISTINCT document_id FROM rag_chunks"
                    " WHERE document_id = ANY(%s) AND text LIKE %s",
                    (list(wanted), f"%{word}%"),
                ).fetchall()
            except Exception:  # the tables come with the first update
                rows = []
        if {row[0] for row in rows} == wanted:
            return time.perf_counter() - started
        time.sleep(0.2)
    raise SystemExit(f"{len(wanted)} issues not searchable after {timeout_s:.0f} s: see the worker's log")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="Single deliveries, one at a time.")
    parser.add_argument("--burst", type=int, default=100, help="Deliveries in the burst, 10 a second.")
    parser.add_argument(
        "--window", type=float, default=10.0, help="The trigger's window, MLSTACK_WEBHOOKS_COALESCE_S."
    )
    args = parser.parse_args()
    tmp = scratch("webhooks")
    repository, branch = git_source(tmp)
    secret = secrets.token_hex(16)
    github = GitHubIssues(REPOSITORY)
    with serve(github) as api_root:
        github.root = api_root
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env |= {
            "MLSTACK_HOME": str(tmp / "home"),
            "MLSTACK_ORCHESTRATION_PREFECT_PORT": str(processes.free_port()),
            "MLSTACK_ORCHESTRATION_MLFLOW_PORT": str(processes.free_port()),
            "MLSTACK_ORCHESTRATION_EVIDENTLY_PORT": str(processes.free_port()),
            "MLSTACK_ORCHESTRATION_GIT_REPOSITORY": repository,
            "MLSTACK_ORCHESTRATION_GIT_BRANCH": branch,
            "MLSTACK_WEBHOOKS_GITHUB_SECRET": secret,
            "MLSTACK_WEBHOOKS_PORT": str(processes.free_port()),
            "MLSTACK_WEBHOOKS_COALESCE_S": str(args.window),
            "MLSTACK_SOURCES_GITHUB_API_URL": api_root,
        }
        settings = Settings(home=tmp / "home")
        receiver = f"http://127.0.0.1:{env['MLSTACK_WEBHOOKS_PORT']}/webhooks/github"
        number = 0

        def deliver(n: int) -> None:
            body = json.dumps(github_issue(REPOSITORY, n)).encode()
            answer = httpx.post(
                receiver, content=body, headers=github_headers(body, secret=secret), timeout=30
            )
            if answer.status_code != 202:
                raise SystemExit(f"the receiver answered {answer.status_code}: {answer.text}")

        def new_issue(word: str) -> int:
            nonlocal number
            number += 1
            github.put(
                number, f"Issue {number}", f"The {word}{number} setting misbehaves under load.", ["Seen too."]
            )
            return number

        console.print("`mlstack up` with the receiver, then `mlstack deploy` ...")
        mlstack(env, "up")
        try:
            mlstack(env, "deploy")
            api = Api(f"http://127.0.0.1:{env['MLSTACK_ORCHESTRATION_PREFECT_PORT']}/api")
            deployment = api.http.get("deployments/name/rag-update/on-webhook").json()
            console.print("a first delivery (the embedder's first load in a fresh data dir) ...")
            n = new_issue("warmup")
            deliver(n)
            cold_s = searchable(settings, [n], f"warmup{n}")
            latencies = []
            for round_ in range(args.rounds):
                time.sleep(args.window + 2)  # past the trigger's window: each round starts its own run
                console.print(f"round {round_ + 1}/{args.rounds}: one delivery to searchable ...")
                n = new_issue("single")
                deliver(n)
                latencies.append(searchable(settings, [n], f"single{n}"))

            time.sleep(args.window + 2)
            known = {run["id"] for run in api.runs(deployment["id"])}
            console.print(f"a burst of {args.burst} deliveries in {args.burst / 10:.0f} s ...")
            burst = [new_issue("burst") for _ in range(args.burst)]
            t0 = time.perf_counter()
            for i, n in enumerate(burst, start=1):
                deliver(n)
                time.sleep(max(0.0, t0 + i / 10 - time.perf_counter()))  # 10 a second
            searchable(settings, burst, "burst")
            burst_s = time.perf_counter() - t0
            time.sleep(args.window + 5)  # a trigger that fired late still shows its run
            runs = [run for run in api.runs(deployment["id"]) if run["id"] not in known]

            console.print("the baseline: a full refresh of the repository, as refresh-hourly runs it ...")
            t0 = time.perf_counter()
            mlstack(env, "rag", "refresh", "--source", f"github:{REPOSITORY}", "--no-evaluate")
            full_s = time.perf_counter() - t0
        finally:
            subprocess.run(
                [sys.executable, "-m", "mlstack.cli", "down"], env=env, capture_output=True, timeout=300
            )
    median, worst = statistics.median(latencies), max(latencies)
    scheduled_s = SCHEDULE_MEAN_WAIT_S + full_s
    result = {
        "bench": "webhooks",
        "delivery_to_searchable_s": round(median, 2),
        "delivery_to_searchable_worst_s": round(worst, 2),
        "delivery_to_searchable_cold_s": round(cold_s, 2),
        "full_refresh_s": round(full_s, 2),
        "scheduled_mean_s": round(scheduled_s, 1),
        "webhook_over_schedule": round(median / scheduled_s, 5),
        "burst_deliveries": args.burst,
        "burst_runs": len(runs),
        "burst_searchable_s": round(burst_s, 2),
        "runs_over_one_per_delivery": round(len(runs) / args.burst, 3),
        "issues": number,
        "rounds": args.rounds,
        "window_s": args.window,
    }
    report(
        "webhooks on a running stack",
        [
            (
                "delivery -> searchable, s (median / worst)",
                f"{statistics.median(latencies):.1f} / {worst:.1f}",
                f"{scheduled_s:.0f} (hourly, mean)",
            ),
            ("the first, with the embedder's load, s", f"{cold_s:.1f}", ""),
            (f"refresh runs for {args.burst} deliveries", str(len(runs)), f"{args.burst} (one per delivery)"),
            (f"the {args.burst} searchable after the burst's start, s", f"{burst_s:.1f}", ""),
            (f"full refresh of {number} issues, s", "", f"{full_s:.1f}"),
        ],
        ("what", "webhooks", "baseline"),
        result,
    )


if __name__ == "__main__":
    main()
