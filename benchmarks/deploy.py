"""Deployments on a real local server: how long `mlstack up` takes to have all three services
answering, and how long a drift event takes to start the retraining run.

Side by side, in one run:
- `mlstack up` (Prefect on the embedded Postgres, the MLflow UI, a worker) against a plain
  `prefect server start` on SQLite, each in a fresh data dir;
- `mlstack.drift.detected` to the retraining run's start (the trigger, the automation, the
  worker, the pull step) against creating the same run directly through the API.

    .venv/bin/python benchmarks/deploy.py [--rounds 5]

Targets on 2 cores: event to run <= 15 s, up <= 30 s. The last line is JSON.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from mlstack import processes
from mlstack.settings import project_root

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import console, report, scratch


def mlstack(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "mlstack.cli", *args], env=env, capture_output=True, text=True, timeout=600
    )
    if done.returncode:
        raise SystemExit(f"mlstack {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def plain_prefect_start(tmp: Path) -> float:
    """A plain `prefect server start` on SQLite, until /api/health answers."""
    port = processes.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(tmp / "plain"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    command = [processes.console_script("prefect"), "server", "start", "--host", "127.0.0.1"]
    t0 = time.perf_counter()
    server = processes.spawn_detached([*command, "--port", str(port)], tmp / "plain.log", env)
    try:
        while not processes.answers(f"http://127.0.0.1:{port}/api/health"):
            time.sleep(0.1)
        return time.perf_counter() - t0
    finally:
        processes.stop_group(server.pid)


def git_source(tmp: Path) -> tuple[str, str]:
    root = project_root()
    sha = subprocess.check_output(["git", "-C", str(root), "rev-parse", "HEAD"], text=True).strip()
    repo = tmp / "repo.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(root), str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "branch", "-f", "bench", sha], check=True)
    return str(repo), "bench"


class Api:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url + "/", timeout=30)

    def post(self, path: str, body: object) -> object:
        answer = self.http.post(path, json=body)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def runs(self, deployment_id: str) -> list[dict]:
        body = {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}}
        return self.post("flow_runs/filter", body)  # type: ignore[return-value]

    def started(self, deployment_id: str, known: set[str], timeout_s: float = 120) -> dict:
        """The new run, once it has a start time (it entered Running) and a final state."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            new = [r for r in self.runs(deployment_id) if r["id"] not in known]
            if new and new[0]["start_time"] and new[0]["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED"):
                return new[0]
            time.sleep(0.2)
        raise SystemExit("no retraining run started: see the worker's log under the data dir")


def seconds_to_start(run: dict, since: datetime) -> float:
    return (datetime.fromisoformat(run["start_time"].replace("Z", "+00:00")) - since).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="Events and direct runs, alternating.")
    args = parser.parse_args()
    tmp = scratch("deploy")
    repository, branch = git_source(tmp)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {
        "MLSTACK_HOME": str(tmp / "home"),
        "MLSTACK_ORCHESTRATION_PREFECT_PORT": str(processes.free_port()),
        "MLSTACK_ORCHESTRATION_MLFLOW_PORT": str(processes.free_port()),
        "MLSTACK_MONITORING_RETRAIN_COOLDOWN_S": "0",  # every event retrains: each round measures one
        "MLSTACK_ORCHESTRATION_GIT_REPOSITORY": repository,
        "MLSTACK_ORCHESTRATION_GIT_BRANCH": branch,
    }
    console.print("plain `prefect server start` (SQLite) ...")
    plain_s = plain_prefect_start(tmp)
    console.print("`mlstack up` in a fresh data dir ...")
    t0 = time.perf_counter()
    mlstack(env, "up")
    up_s = time.perf_counter() - t0
    event_s: list[float] = []
    direct_s: list[float] = []
    try:
        mlstack(env, "deploy")
        api = Api(f"http://127.0.0.1:{env['MLSTACK_ORCHESTRATION_PREFECT_PORT']}/api")
        deployment = api.http.get("deployments/name/retraining/on-drift").json()
        known = {run["id"] for run in api.runs(deployment["id"])}
        for round_ in range(args.rounds):
            console.print(f"round {round_ + 1}/{args.rounds}: a drift event, then a direct run ...")
            since = datetime.now(UTC)
            event = {
                "id": str(uuid.uuid4()),
                "occurred": since.isoformat(),
                "event": "mlstack.drift.detected",
                "resource": {"prefect.resource.id": "mlstack.model.trip_duration"},
                "payload": {"model": "trip_duration", "version": "1", "window_end": since.isoformat()},
                "related": [],
            }
            api.post("events", [event])
            run = api.started(deployment["id"], known)
            known.add(run["id"])
            event_s.append(seconds_to_start(run, since))
            since = datetime.now(UTC)
            api.post(f"deployments/{deployment['id']}/create_flow_run", {"parameters": {"params": {}}})
            run = api.started(deployment["id"], known)
            known.add(run["id"])
            direct_s.append(seconds_to_start(run, since))
    finally:
        mlstack(env, "down")
    best_event, best_direct = min(event_s), min(direct_s)
    result = {
        "bench": "deploy",
        "event_to_run_s": round(max(event_s), 2),
        "event_to_run_best_s": round(best_event, 2),
        "direct_to_run_best_s": round(best_direct, 2),
        "event_over_direct": round(best_event / best_direct, 3),
        "up_ready_s": round(up_s, 2),
        "plain_prefect_start_s": round(plain_s, 2),
        "up_over_plain_prefect": round(up_s / plain_s, 3),
        "rounds": args.rounds,
    }
    report(
        "deployments on a local server (seconds)",
        [
            ("drift event -> retraining run starts", f"{best_event:.2f}", f"{max(event_s):.2f}"),
            ("API create_flow_run -> run starts", f"{best_direct:.2f}", f"{max(direct_s):.2f}"),
            ("mlstack up: prefect + mlflow + worker answering", f"{up_s:.2f}", ""),
            ("plain prefect server start (SQLite)", f"{plain_s:.2f}", ""),
        ],
        ("what", "best", "worst"),
        result,
    )


if __name__ == "__main__":
    main()
