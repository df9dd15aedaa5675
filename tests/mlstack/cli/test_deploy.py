"""The deployments on a real Prefect server, end to end: `mlstack up` (a `prefect server start` on
the embedded Postgres, the MLflow UI, a process worker), `mlstack deploy` from prefect.yaml, a
deployment run by the worker, the drift trigger with its cooldown and its guard against a
malformed payload, then `mlstack down`.

Everything goes through the commands and the server's REST API, as a user's tools would: the
test process never points its own Prefect at this server. One server serves the whole module;
the tests run in the order of the story.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from mlstack import postgres, processes
from mlstack.settings import Settings
from tests.conftest import PROJECT_ROOT, copy_trained_home
from tests.kill import alive, command_env, mlstack
from tests.mlstack.sources.fakes import GitHubIssues, serve
from tests.mlstack.webhooks.signing import GITHUB_SECRET, github_comment, github_headers, github_issue

pytestmark = pytest.mark.slow

COOLDOWN_S = 600


class Server:
    def __init__(self, api: str) -> None:
        self.api = api
        self.http = httpx.Client(base_url=api + "/", timeout=30)

    def post(self, path: str, body: Any = None) -> Any:
        answer = self.http.post(path, json=body if body is not None else {})
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def get(self, path: str) -> Any:
        answer = self.http.get(path)
        answer.raise_for_status()
        return answer.json()

    def deployment(self, flow: str, name: str) -> dict[str, Any]:
        return self.get(f"deployments/name/{flow}/{name}")

    def runs_of(self, deployment_id: str) -> list[dict[str, Any]]:
        body = {"flow_runs": {"deployment_id": {"any_": [deployment_id]}}, "sort": "START_TIME_DESC"}
        return self.post("flow_runs/filter", body)

    def run(self, flow: str, name: str, params: dict[str, Any]) -> dict[str, Any]:
        deployment = self.deployment(flow, name)
        created = self.post(f"deployments/{deployment['id']}/create_flow_run", {"parameters": params})
        return self.wait_final(created["id"])

    def wait_final(self, run_id: str, timeout_s: float = 240) -> dict[str, Any]:
        run = wait_for(lambda: _final(self.get(f"flow_runs/{run_id}")), timeout_s, f"run {run_id}")
        return run

    def emit(self, resource_id: str, payload: dict[str, Any]) -> str:
        event_id = str(uuid.uuid4())
        event = {
            "id": event_id,
            "occurred": datetime.now(UTC).isoformat(),
            "event": "mlstack.drift.detected",
            "resource": {"prefect.resource.id": resource_id},
            "payload": payload,
            "related": [],
        }
        self.post("events", [event])
        return event_id

    def events(self, name: str) -> list[dict[str, Any]]:
        body = {"filter": {"event": {"name": [name]}, "occurred": {"since": "2000-01-01T00:00:00Z"}}}
        return self.post("events/filter", body)["events"]

    def verdict_on(self, event_id: str) -> list[dict[str, Any]]:
        """The automation's action events (executed or failed) that `event_id` triggered."""
        names = ["prefect.automation.action.executed", "prefect.automation.action.failed"]
        body = {"filter": {"event": {"name": names}, "occurred": {"since": "2000-01-01T00:00:00Z"}}}
        triggered_by = f"prefect.event.{event_id}"
        return [
            event
            for event in self.post("events/filter", body)["events"]
            if any(r.get("prefect.resource.id") == triggered_by for r in event.get("related", []))
        ]


def _final(run: dict[str, Any]) -> dict[str, Any] | None:
    return run if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None


def wait_for(probe: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(0.5)
    raise AssertionError(f"{what}: nothing after {timeout_s} s")


def cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(mlstack(*args, "--json"), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def git_source(tmp: Path) -> tuple[str, str]:
    """A repository holding this checkout's commit on a branch of its own, for the pull step."""
    if not (PROJECT_ROOT / ".git").exists():
        pytest.skip("deployments clone their code from git: this tree is not a git checkout")
    sha = subprocess.check_output(["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], text=True).strip()
    repo = tmp / "repo.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(PROJECT_ROOT), str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "branch", "-f", "e2e", sha], check=True)
    return str(repo), "e2e"


@pytest.fixture(scope="module")
def github_api() -> Iterator[tuple[GitHubIssues, str]]:
    """GitHub's REST API for one repository, on loopback: the worker's runs read issues from it."""
    issues = GitHubIssues("octo/cat")
    with serve(issues) as url:
        issues.root = url
        yield issues, url


@pytest.fixture(scope="module")
def stack(
    trained_home: Path, tmp_path_factory: pytest.TempPathFactory, github_api: tuple[GitHubIssues, str]
) -> Iterator[tuple[dict[str, str], Server, dict]]:
    tmp = tmp_path_factory.mktemp("stack")
    home = copy_trained_home(trained_home, tmp / "home")
    repository, branch = git_source(tmp)
    env = command_env(
        home,
        MLSTACK_ORCHESTRATION_PREFECT_PORT=str(processes.free_port()),
        MLSTACK_ORCHESTRATION_MLFLOW_PORT=str(processes.free_port()),
        MLSTACK_ORCHESTRATION_EVIDENTLY_PORT=str(processes.free_port()),
        MLSTACK_MONITORING_RETRAIN_COOLDOWN_S=str(COOLDOWN_S),
        MLSTACK_ORCHESTRATION_GIT_REPOSITORY=repository,
        MLSTACK_ORCHESTRATION_GIT_BRANCH=branch,
        # The scheduler's loop every 2 s instead of 60: a schedule's runs appear within the test.
        PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2",
        MLSTACK_WEBHOOKS_GITHUB_SECRET=GITHUB_SECRET,
        MLSTACK_WEBHOOKS_PORT=str(processes.free_port()),
        MLSTACK_WEBHOOKS_COALESCE_S="3",
        MLSTACK_SOURCES_GITHUB_API_URL=github_api[1],
    )
    started = cli(env, "up")
    try:
        yield env, Server(started["api_url"]), started
    finally:
        subprocess.run(mlstack("down"), env=env, capture_output=True, timeout=120)
        postgres.stop_embedded(Settings(home=home).pg_dir)


def test_up_starts_each_service_once_on_loopback(stack: tuple[dict[str, str], Server, dict]) -> None:
    env, _, started = stack
    services = {s["name"]: s for s in started["services"]}
    names = ("prefect", "mlflow", "evidently", "worker")
    assert [services[name]["state"] for name in names] == ["started"] * 4
    assert services["prefect"]["url"].startswith("http://127.0.0.1:")
    assert httpx.get(services["mlflow"]["url"] + "/health").status_code == 200
    # The Evidently UI serves the data dir's workspace, on the port its setting names.
    assert services["evidently"]["url"] == f"http://127.0.0.1:{env['MLSTACK_ORCHESTRATION_EVIDENTLY_PORT']}"
    assert httpx.get(services["evidently"]["url"] + "/api/projects").json() == []
    # The server keeps its state in the embedded Postgres, not in SQLite.
    settings = Settings(home=Path(env["MLSTACK_HOME"]))
    with postgres.connect(settings) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = 'prefect'").fetchone()
    again = {s["name"]: s for s in cli(env, "up")["services"]}
    assert {name: again[name]["state"] for name in names} == dict.fromkeys(names, "running")
    assert again["worker"]["pid"] == services["worker"]["pid"]


def test_deploy_applies_every_deployment_and_the_worker_runs_one(
    stack: tuple[dict[str, str], Server, dict],
) -> None:
    env, server, _ = stack
    # As filed: the gpu pool's deployments wait for a worker no laptop runs, and the result says so.
    as_filed = cli(env, "deploy")
    assert (
        set(as_filed["unpolled"]) == {"gpu"}
        and "pretrain-train/pretrain-train" in as_filed["unpolled"]["gpu"]
    )
    result = cli(env, "deploy", "--pool", "gpu=cpu")
    assert result["unpolled"] == {}
    assert len(result["deployments"]) == len(server.post("deployments/filter"))
    pools = {pool["name"]: pool for pool in server.post("work_pools/filter")}
    assert pools["cpu"]["type"] == "process"
    assert pools["gpu"]["concurrency_limit"] == 1
    run = server.run(
        "batch-inference", "score-daily", {"params": {"start": "2026-09-05", "end": "2026-09-06"}}
    )
    assert run["state"]["type"] == "COMPLETED", run["state"]
    settings = Settings(home=Path(env["MLSTACK_HOME"]))
    with postgres.connect(settings) as conn:
        scored = conn.execute("SELECT count(*) FROM trip_predictions").fetchone()[0]
    assert scored > 0


def test_mlstack_env_points_the_plain_prefect_and_mlflow_commands_at_up_s_servers(
    stack: tuple[dict[str, str], Server, dict],
) -> None:
    """`eval "$(mlstack env)"` in a shell, then the plain `prefect` and `mlflow` commands: without
    it, `prefect deployment ls` starts a server of its own on an empty database."""
    env, server, started = stack
    cli(env, "deploy", "--pool", "gpu=cpu")
    exported = subprocess.run(mlstack("env"), env=env, capture_output=True, text=True, check=True).stdout
    shell = f"{exported}\nprefect deployment ls\nmlflow experiments search"
    bin_dir = Path(sys.executable).parent
    plain = {k: v for k, v in env.items() if not k.startswith("MLSTACK_")}  # what a new shell has
    plain["PATH"] = f"{bin_dir}{os.pathsep}{plain.get('PATH', '')}"
    shown = subprocess.run(["bash", "-c", shell], env=plain, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "training/train" in shown.stdout and "batch-inference/score-daily" in shown.stdout
    assert "trip_duration" in shown.stdout.split("batch-inference/score-daily")[-1]  # an MLflow experiment
    variables = cli(env, "env")
    services = {s["name"]: s for s in started["services"]}
    assert variables["PREFECT_API_URL"] == server.api
    assert variables["MLFLOW_TRACKING_URI"] == services["mlflow"]["url"]


def test_a_deployed_cron_schedule_creates_runs_on_the_server(
    stack: tuple[dict[str, str], Server, dict],
) -> None:
    """The server's scheduler turns prefect.yaml's active hourly schedule into scheduled runs.
    With SQLAlchemy 2.1 it failed every loop (`Can't evaluate bulk DML statement`) and created
    none, while manual runs and triggers still worked: constraints.txt pins 2.0."""
    env, server, _ = stack
    cli(env, "deploy", "--pool", "gpu=cpu")  # idempotent: the same deployments as the test above
    materialize = server.deployment("features", "materialize")
    assert [s["schedule"]["cron"] for s in materialize["schedules"] if s["active"]] == ["5 * * * *"]
    try:
        runs = wait_for(
            lambda: [r for r in server.runs_of(materialize["id"]) if r["state"]["type"] == "SCHEDULED"],
            90,
            "a scheduled run of features/materialize",
        )
        starts = sorted(datetime.fromisoformat(r["expected_start_time"]) for r in runs)
        assert all((at.minute, at.second) == (5, 0) for at in starts), starts
        assert starts[0] > datetime.now(UTC) - timedelta(minutes=1)
    finally:  # no scheduled features run may start under the other tests of this module
        server.http.patch(f"deployments/{materialize['id']}", json={"paused": True}).raise_for_status()


def test_drift_event_retrains_once_per_cooldown_with_the_payload(
    stack: tuple[dict[str, str], Server, dict],
) -> None:
    _, server, _ = stack
    retraining = server.deployment("retraining", "on-drift")
    before = server.runs_of(retraining["id"])
    payload = {"model": "trip_duration", "version": "1", "window_end": "2026-09-06T00:00:00+00:00"}
    server.emit("mlstack.model.trip_duration", payload)
    run = wait_for(lambda: server.runs_of(retraining["id"])[len(before) :], 60, "a retraining run")[0]
    params = run["parameters"]["params"]
    assert (params["model"], params["version"], params["until"]) == (
        "trip_duration",
        "1",
        payload["window_end"],
    )
    assert server.wait_final(run["id"])["state"]["type"] == "COMPLETED"

    server.emit("mlstack.model.trip_duration", {**payload, "version": "2"})  # inside the cooldown
    # No fixed sleep: a sentinel event on a resource of its own follows it through the same
    # trigger, and its payload is malformed, so its action fails and says so in an event that
    # names it as the triggering event. The server's trigger service takes events in order, so
    # once the sentinel's verdict is in, the in-cooldown event has been judged too.
    sentinel = server.emit(
        f"mlstack.model.sentinel-{uuid.uuid4().hex[:8]}", {**payload, "version": "not a version"}
    )
    wait_for(lambda: server.verdict_on(sentinel), 60, "the sentinel's refused action")
    assert len(server.runs_of(retraining["id"])) == len(before) + 1


def test_a_malformed_payload_starts_no_run(stack: tuple[dict[str, str], Server, dict]) -> None:
    _, server, _ = stack
    retraining = server.deployment("retraining", "on-drift")
    before = len(server.runs_of(retraining["id"]))
    # Another model's resource: its own cooldown bucket, so only the guard can stop this one.
    broken = server.emit(
        "mlstack.model.broken", {"model": "trip_duration", "version": "v1; drop", "window_end": "soon"}
    )
    verdict = wait_for(lambda: server.verdict_on(broken), 60, "the refused action")
    assert [event["event"] for event in verdict] == ["prefect.automation.action.failed"]
    assert "params" in json.dumps(verdict[0]["payload"])
    assert len(server.runs_of(retraining["id"])) == before


def test_a_signed_github_delivery_refreshes_just_its_issue_and_search_finds_it(
    stack: tuple[dict[str, str], Server, dict], github_api: tuple[GitHubIssues, str]
) -> None:
    env, server, started = stack
    issues, _ = github_api
    [receiver] = [s["url"] for s in started["services"] if s["name"] == "webhooks"]
    deployment = server.deployment("rag-update", "on-webhook")
    known = {r["id"] for r in server.runs_of(deployment["id"])}

    def new_runs() -> list[dict]:
        return [r for r in server.runs_of(deployment["id"]) if r["id"] not in known]

    def deliver(event: str, payload: dict) -> None:
        body = json.dumps(payload).encode()
        answer = httpx.post(f"{receiver}/webhooks/github", content=body, headers=github_headers(body, event))
        assert answer.status_code == 202, answer.text

    def found(question: str) -> list[dict]:
        return cli(env, "rag", "search", question, "--mode", "fulltext")["hits"]

    issues.put(
        77,
        "Uploader retries forever",
        "Uploads retry forever on HTTP 507 insufficient storage.",
        ["Set zorblax_retries to 5."],
    )
    deliver("issues", github_issue("octo/cat", 77))
    [run] = wait_for(new_runs, 60, "a rag-update run")
    assert run["parameters"]["params"]["source"] == "github:octo/cat"
    assert server.wait_final(run["id"])["state"]["type"] == "COMPLETED"
    hits = found("insufficient storage 507")
    assert hits and hits[0]["document_id"] == "github:octo/cat#77"
    assert found("zorblax retries")[0]["document_id"] == "github:octo/cat#77"

    # Edited, and its comment deleted: the old chunks go, the new text is found.
    issues.put(77, "Uploader retries forever", "Uploads now stop after quuxified backoff.")
    deliver("issue_comment", github_comment("octo/cat", 77, 77000, "deleted"))
    wait_for(
        lambda: [h for h in found("quuxified backoff") if h["document_id"] == "github:octo/cat#77"],
        90,
        "the edit",
    )
    for gone in ("zorblax", "insufficient"):  # the deleted comment's word, the old body's
        assert not [h for h in found(gone) if h["document_id"] == "github:octo/cat#77"], gone


def test_down_stops_exactly_what_up_started(stack: tuple[dict[str, str], Server, dict]) -> None:
    env, _, started = stack
    pids = {s["name"]: s["pid"] for s in started["services"] if s["state"] == "started"}
    stopped = {s["name"]: s["state"] for s in cli(env, "down")["services"]}
    assert all(stopped[name] == "stopped" for name in pids)
    assert not [name for name, pid in pids.items() if psutil.pid_exists(pid) and alive(pid)]
    # Nothing answers any more, and a second down has nothing to stop.
    with pytest.raises(httpx.HTTPError):
        httpx.get(started["api_url"] + "/health", timeout=2)
    second = {s["name"]: s for s in cli(env, "down")["services"]}
    assert {name: line["state"] for name, line in second.items() if name != "postgres"} == dict.fromkeys(
        ("webhooks", "worker", "evidently", "mlflow", "prefect", "api"), "not running"
    )
    # A Postgres `up` started is stopped with the rest; one a command started stays (tests/mlstack/
    # deploy/test_stack.py covers that case and `down --postgres`).
    assert second["postgres"]["state"] == ("not running" if "postgres" in pids else "running")
