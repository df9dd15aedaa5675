"""End to end: `mlstack demo` as a user runs it, once per test session, and two stories read from
that one run.

The demo runs as the CLI subprocess (its own data dir, `mlstack up`'s services on free ports,
which it starts and leaves running) with canary secrets in every place settings read one from,
behind a proxy that notes and refuses every request bound off this machine. The first test reads
its result: the classic loop, the monitoring loop and the four AI patterns. Others read what is
true after it ended (its runs in the Prefect UI it printed), what it tried to reach (nothing but
the alert hooks it was given), and where the secrets went: nowhere, neither to the output nor to
any file of the data dir.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

import httpx
import pytest

from flows.demo import REFERENCE_S, DemoResult
from mlstack import postgres, processes
from mlstack.cli.demo import render_demo
from mlstack.settings import Settings
from tests.conftest import PROJECT_ROOT, rendered
from tests.fence import Fence
from tests.kill import command_env, mlstack, run

# Canary secrets in every place settings read one from; the demo alerts on drift to each URL.
# The suite's proxy fence (tests/conftest.py) refuses the Slack and Telegram requests on loopback.
CANARIES = {
    "MLSTACK_MONITORING_ALERT_URLS": "slack://TOKACANARY1/TOKBCANARY2/TOKCCANARY3,"
    "tgram://987654321:AAHCANARYTELEGRAM/12345,json://alerts:CANARYJSONPW@127.0.0.1:9/hook",
    "OPENAI_API_KEY": "sk-CANARYOPENAIKEY",
    "MLSTACK_LLM_PROVIDER": "local",  # the key is set, but nothing can reach OpenAI from here
}
SECRETS = ["TOKACANARY1", "TOKBCANARY2", "TOKCCANARY3", "AAHCANARYTELEGRAM", "CANARYJSONPW"]
SECRETS += ["sk-CANARYOPENAIKEY"]


# The hosts the demo may try: the alert hooks above. Anything else is a download or telemetry.
ALERT_HOSTS = {"hooks.slack.com", "api.telegram.org"}
PORTS = ("PREFECT", "MLFLOW", "EVIDENTLY")


@dataclass
class DemoRun:
    home: Path
    settings: Settings
    env: dict[str, str]
    demo: CompletedProcess[str]
    info: CompletedProcess[str]
    asked: CompletedProcess[str]  # `mlstack rag ask` after the demo, as docs/rag.md shows it
    result: DemoResult
    predictions: int  # rows in the trip_predictions table after the demo
    tried: set[str]  # the hosts off this machine that the demo and the commands after it tried
    plain: CompletedProcess[str]  # `eval "$(mlstack env)"; prefect flow-run ls`, after the demo


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    home = tmp_path_factory.mktemp("demo") / "home"
    settings = Settings(home=home)
    ports = {f"MLSTACK_ORCHESTRATION_{name}_PORT": str(processes.free_port()) for name in PORTS}
    steps = ("--days", "7", "--trials", "1", "--pretrain-steps", "10", "--finetune-steps", "10")
    with Fence() as fence:
        env = command_env(home, **CANARIES, **ports, **fence.env)
        try:
            demo = run(mlstack("demo", *steps, "--json"), env, timeout_s=1500)
            assert demo.returncode == 0, demo.stderr[-3000:]
            info = run(mlstack("info"), env)
            asked = run(mlstack("rag", "ask", "Why did a second drift alert not retrain?", "--json"), env)
            result = DemoResult.model_validate_json(demo.stdout.strip().splitlines()[-1])
            with postgres.connect(settings) as conn:
                predictions = conn.execute("SELECT count(*) FROM trip_predictions").fetchone()[0]
            exported = run(mlstack("env"), env).stdout
            path = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
            shell = f"{exported}\nprefect flow-run ls --flow-name demo --state-type COMPLETED"
            plain = run(["bash", "-c", shell], {**env, "PATH": path})
            yield DemoRun(home, settings, env, demo, info, asked, result, predictions, fence.hosts, plain)
        finally:  # the demo leaves `up`'s services and the embedded Postgres running: stop them
            run(mlstack("down", "--postgres"), env)
            postgres.stop_embedded(settings.pg_dir)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_demo_runs_the_classic_loop_end_to_end(demo_run: DemoRun) -> None:
    result = demo_run.result
    assert set(result.data.validated) == {"trips", "driver_stats", "zone_stats"}
    assert result.features.views == ["driver_hourly", "zone_hourly"]
    assert result.training.promoted and result.training.version == "1"
    assert result.batch_inference.rows > 0 and result.batch_inference.model_versions == ["1"]
    online = result.online.response
    assert online.model_version == "1" and online.predicted_duration_s > 0 and online.fallback == []
    # The online step went through the serving app's own path, serving log included.
    assert demo_run.settings.serving_log.read_text().count("\n") == 1
    assert Path(result.where["validation report"]).is_file()
    # RAG: the shipped samples and docs refreshed, and one question answered with citations.
    assert result.rag_refresh.documents >= 12 and all(c.skipped == 0 for c in result.rag_refresh.sources)
    assert result.rag.mode == "extractive" and result.rag.citations
    assert result.rag.citations[0].url == "https://slack.com/archives/C0MLS0002/p1789466500000200"
    # Time moves on: a normal day passes quietly, three drifting days alert and retrain.
    quiet, drifting = result.baseline_window.monitoring, result.drift_window.monitoring
    assert quiet.status == "ok" and quiet.retraining is None, quiet.drift.reasons
    assert drifting.status == "drift" and drifting.drift.dataset_drift
    assert drifting.retraining.version == "2" and drifting.retraining.promoted
    assert drifting.drift.reports["drift"].is_file()
    # A tiny code model is pretrained and becomes the local model; one question goes to it
    # through its endpoint, and the answer says honestly what such a model is.
    assert result.pretraining.evaluate.promoted and result.pretraining.train.steps == 10
    asked = result.prompt_engineering
    assert asked.provider == "local" and asked.model == "code_lm-v1" and not asked.meaningful
    assert asked.note and "never taught to follow instructions" in asked.note
    assert asked.answer and asked.prompt == "prompts:/ask_in_context/1"
    assert {"sentences", "links", "links_well_formed", "passed"} <= set(asked.checks.model_dump())
    assert demo_run.predictions == (
        result.batch_inference.rows + quiet.drift.current_rows + drifting.drift.current_rows
    )
    # LoRA adapts the pretrained champion to the sample's Q&A, and the gate decides on it.
    tuned = result.fine_tuning
    assert tuned.ingest.pairs >= 25 and tuned.dataset.train > tuned.dataset.validation > 0
    assert tuned.train.base.endswith("code_lm-v1") and tuned.train.metrics["trainable_fraction"] < 0.1
    assert tuned.evaluate.version == "1" and tuned.evaluate.reason
    # What `mlstack demo` prints without --json, from this very result.
    story = rendered(render_demo(result), width=400)
    assert f"v1 test MAE {result.training.test_mae:.0f}s; champion" in story
    assert "drift on v1" in story and "retrained v2" in story
    assert f"{tuned.ingest.pairs} Q&A pairs in 4 monthly partitions" in story


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_question_asked_after_the_demo_gets_a_cited_answer(demo_run: DemoRun) -> None:
    """After the demo the local model is the fine-tuned one, which reads 256 tokens: fewer than
    the RAG prompt with all its passages. The answer fits the passages to it, or quotes them and
    says why; either way it cites its sources and the command succeeds."""
    import json

    asked = demo_run.asked
    assert asked.returncode == 0, asked.stderr[-3000:]
    answer = json.loads(asked.stdout.strip().splitlines()[-1])
    assert answer["citations"] and answer["mode"] in ("generated", "extractive"), answer
    if demo_run.result.fine_tuning.evaluate.promoted:  # the 256-token chat model answers
        assert answer["note"] and "support_lm-v1" in answer["note"], answer


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_no_secret_reaches_output_or_any_file_of_the_data_dir(demo_run: DemoRun) -> None:
    """The whole demo and `info`, with canaries set: stdout, stderr and every file under the
    data dir (the Prefect and MLflow databases and their WAL files among them) hold none."""
    demo, info = demo_run.demo, demo_run.info
    assert info.returncode == 0, info.stderr
    shown = demo.stdout + demo.stderr + info.stdout + info.stderr
    assert "alert to slack://T...1/T...2/T...3// failed" in shown, "the alerts were attempted"
    assert "slack://T...1/T...2/T...3//" in info.stdout and "(set, hidden)" in info.stdout

    leaks = [secret for secret in SECRETS if secret in shown]
    files = [path for path in demo_run.home.rglob("*") if path.is_file()]
    assert any(p.name == "mlflow.db" for p in files)
    assert any(p.is_relative_to(demo_run.settings.pg_dir) for p in files)  # Prefect's database too
    for path in files:
        content = path.read_bytes()
        leaks += [f"{secret} in {path}" for secret in SECRETS if secret.encode() in content]
    assert leaks == []


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_after_the_demo_its_runs_and_links_are_in_the_ui_it_printed(demo_run: DemoRun) -> None:
    """The demo ran on `mlstack up`'s server and left it running: each "View at" link it logged
    is a run that server still serves, the table's UIs answer, and the plain `prefect` command
    (after `mlstack env`) lists the demo's run."""
    ui = f"http://127.0.0.1:{demo_run.env['MLSTACK_ORCHESTRATION_PREFECT_PORT']}"
    links = re.findall(r"View at (\S+)/runs/flow-run/([0-9a-f-]{36})", demo_run.demo.stderr)
    assert len(links) > 20 and {base for base, _ in links} == {ui}
    for _, run_id in links[:3] + links[-3:]:
        assert httpx.get(f"{ui}/api/flow_runs/{run_id}").json()["state"]["type"] == "COMPLETED"
    where = demo_run.result.where
    assert where["Prefect UI"].startswith(ui)
    mlflow = where["MLflow UI"].split()[0]
    assert mlflow == f"http://127.0.0.1:{demo_run.env['MLSTACK_ORCHESTRATION_MLFLOW_PORT']}"
    assert httpx.get(f"{mlflow}/health").status_code == 200
    assert httpx.get(f"{where['drift over time'].split()[0]}/api/projects").status_code == 200
    assert demo_run.plain.returncode == 0, demo_run.plain.stderr[-2000:]
    assert "demo" in demo_run.plain.stdout and "COMPLETED" in demo_run.plain.stdout
    # It said up front how long each stage should take, and timed them for the next run's say.
    assert "expected on this machine, from a reference run on 2 cores" in demo_run.demo.stderr
    assert set(demo_run.result.stage_seconds) == set(REFERENCE_S)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_nothing_is_tried_off_this_machine_but_the_alert_hooks(demo_run: DemoRun) -> None:
    """No download and no telemetry: MLflow fetched its price catalog from github.com and sent
    telemetry, three tries each per LLM command, before bootstrap turned both off."""
    assert demo_run.tried == ALERT_HOSTS


NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.py"))


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_notebook_runs_top_to_bottom_on_the_demo_data_dir(demo_run: DemoRun) -> None:
    """notebooks/ (jupytext percent format) executed by nbclient in a kernel with the demo's
    environment: no cell fails, and each draws what it is there to show."""
    import jupytext
    from nbclient import NotebookClient

    assert [p.stem for p in NOTEBOOKS] == ["01_trips", "02_features", "03_experiments", "04_rag"]
    shown: dict[str, set[str]] = {}
    for path in NOTEBOOKS:
        notebook = jupytext.read(path)
        client = NotebookClient(
            notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        )
        client.execute(env=demo_run.env)  # a failing cell raises, naming the cell and its error
        outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])]
        assert [o for o in outputs if o.output_type == "error"] == [], path.name
        shown[path.stem] = {kind for o in outputs for kind in o.get("data", {})}
    for name in ("01_trips", "02_features", "03_experiments"):
        assert "image/png" in shown[name], name  # its plots
    assert all("text/html" in kinds for kinds in shown.values())  # its tables


def test_the_stage_estimates_scale_with_steps_and_prefer_this_machine_s_last_run() -> None:
    from flows.demo import DemoParams, expected_seconds, timings_file

    expected, source = expected_seconds(DemoParams(pretrain_steps=30, finetune_steps=120))
    assert source.startswith("a reference run on 2 cores")
    assert expected["pretraining"] == REFERENCE_S["pretraining"] * 30 / 300
    assert (
        expected["fine_tuning"] == REFERENCE_S["fine_tuning"] * 2 and expected["data"] == REFERENCE_S["data"]
    )
    last = {"data": 7.0, "pretraining": 40.0, "fine_tuning": 10.0}
    record = {"params": {"pretrain_steps": 20, "finetune_steps": 10}, "stage_seconds": last}
    timings_file().parent.mkdir(parents=True)
    timings_file().write_text(json.dumps({**record, "finished": "2026-12-03T18:00:00+00:00"}))
    expected, source = expected_seconds(DemoParams(pretrain_steps=10))
    assert source == "the last demo in this data dir (2026-12-03T18:00:00+00:00)"
    assert expected == {"data": 7.0, "pretraining": 20.0, "fine_tuning": 60.0}
