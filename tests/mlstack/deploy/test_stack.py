"""The pid records of `mlstack up`: a live one is trusted, a stale one is removed and never
acted on, even when its pid now belongs to another process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mlstack import processes
from mlstack.deploy import stack
from mlstack.settings import get_settings


def write(name: str, pid: int, stamp: str) -> None:
    settings = get_settings()
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    record = stack.Record(name=name, pid=pid, stamp=stamp, url="http://127.0.0.1:1/api")
    stack.record_path(settings, name).write_text(record.model_dump_json())


def test_a_record_of_a_live_service_is_trusted() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        write("prefect", child.pid, processes.stamp_of(child.pid))
        record, stale = stack.live_record(get_settings(), "prefect")
        assert record is not None and record.pid == child.pid and not stale
        assert stack.running_api_url(get_settings()) == "http://127.0.0.1:1/api"
        assert [line.state for line in stack.down(get_settings()).services if line.name == "prefect"] == [
            "stopped"
        ]
        assert child.wait(timeout=15) is not None
    finally:
        child.kill()


def test_a_reused_pid_is_stale_and_left_alone() -> None:
    # Our own pid, but another start time: the service died and this process took its number.
    host, pid, started = processes.owner().split(":")
    write("worker", os.getpid(), f"{host}:{pid}:{int(started) - 1000}")
    result = stack.down(get_settings())
    worker = next(line for line in result.services if line.name == "worker")
    assert (worker.state, worker.note) == ("not running", "a stale pid file was removed")
    assert not stack.record_path(get_settings(), "worker").exists()
    # ...and this test process is still here to say so.


@pytest.mark.parametrize("content", ["{not json", '{"name": "mlflow"}'])
def test_a_torn_record_is_removed(content: str) -> None:
    settings = get_settings()
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    stack.record_path(settings, "mlflow").write_text(content)
    assert stack.live_record(settings, "mlflow") == (None, True)
    assert not stack.record_path(settings, "mlflow").exists()


def test_a_dead_pid_is_stale() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    stamp = processes.stamp_of(child.pid)
    child.wait()
    write("prefect", child.pid, stamp)
    assert stack.running_api_url(get_settings()) is None
    assert not stack.record_path(get_settings(), "prefect").exists()


def test_a_taken_port_is_named_with_the_setting_to_change(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from mlstack.errors import Busy

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("MLSTACK_ORCHESTRATION_MLFLOW_PORT", str(taken.getsockname()[1]))
        with pytest.raises(Busy, match="MLSTACK_ORCHESTRATION_MLFLOW_PORT"):
            stack._ensure(get_settings(), lambda: stack.mlflow_spec(get_settings()), "mlflow")


@pytest.mark.slow
def test_an_up_killed_while_a_server_starts_leaves_it_on_record_for_down(tmp_path) -> None:
    from mlstack.settings import Settings
    from tests.kill import command_env, kill_when, mlstack

    home = tmp_path / "home"
    env = command_env(
        home,
        MLSTACK_ORCHESTRATION_PREFECT_PORT=str(processes.free_port()),
        MLSTACK_ORCHESTRATION_MLFLOW_PORT=str(processes.free_port()),
        MLSTACK_ORCHESTRATION_EVIDENTLY_PORT=str(processes.free_port()),
    )
    settings = Settings(home=home)
    try:
        killed = kill_when(mlstack("up"), env, when=lambda: stack.record_path(settings, "prefect").exists())
        record, _ = stack.live_record(settings, "prefect")
        assert record is not None, killed.output[-2000:]  # the server outlived `up`, on record
        # The next `up` waits for the recorded server (it was a 150-line traceback while that
        # server still started), and starts the rest.
        again = subprocess.run(mlstack("up", "--json"), env=env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-2000:]
        states = {line["name"]: line["state"] for line in json.loads(again.stdout)["services"]}
        assert states["prefect"] == "running" and states["worker"] == "started", states
        done = subprocess.run(mlstack("down", "--json"), env=env, capture_output=True, text=True, timeout=120)
        assert '"name":"prefect","state":"stopped"' in done.stdout, done.stderr[-2000:]
        assert not stack.live_record(settings, "prefect")[0]
        assert not processes.owner_alive(record.stamp)
    finally:
        from mlstack import postgres

        subprocess.run(mlstack("down"), env=env, capture_output=True, timeout=120)
        postgres.stop_embedded(settings.pg_dir)


@pytest.mark.slow
def test_down_leaves_the_commands_postgres_running_unless_asked_and_never_loses_its_data() -> None:
    from typer.testing import CliRunner

    from mlstack import postgres
    from mlstack.cli import app

    settings = get_settings()
    with postgres.connect(settings) as conn:  # as any flow or command starts it
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    try:

        def down(*args: str) -> dict[str, dict]:
            result = CliRunner().invoke(app, ["down", "--json", *args])
            assert result.exit_code == 0, result.output
            return {line["name"]: line for line in json.loads(result.stdout)["services"]}

        kept = down()["postgres"]
        assert kept["state"] == "running" and "mlstack down --postgres" in kept["note"]
        assert postgres.embedded_running(settings.pg_dir)
        stopped = down("--postgres")["postgres"]
        assert stopped["state"] == "stopped" and stopped["note"] == "its data is kept"
        assert not postgres.embedded_running(settings.pg_dir)
        assert down("--postgres")["postgres"]["state"] == "not running"
        with postgres.connect(settings) as conn:  # the next command starts it again, data and all
            assert conn.execute("SELECT n FROM kept").fetchall() == [(42,)]
    finally:
        postgres.stop_embedded(settings.pg_dir)


def test_env_and_the_uis_follow_what_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing up: the tracking store itself, no Prefect API, and how to start each UI. With
    `up`'s records live: their addresses. A user's own PREFECT_API_URL wins over `up`'s."""
    settings = get_settings()
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert stack.environment(settings) == {
        "MLSTACK_HOME": str(settings.home),
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
    }
    assert stack.uis(settings)["Prefect UI"] == "mlstack up, then http://127.0.0.1:4200"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        for name, url in (("prefect", "http://127.0.0.1:1/api"), ("mlflow", "http://127.0.0.1:2")):
            record = stack.Record(name=name, pid=child.pid, stamp=processes.stamp_of(child.pid), url=url)
            stack.record_path(settings, name).parent.mkdir(parents=True, exist_ok=True)
            stack.record_path(settings, name).write_text(record.model_dump_json())
        assert stack.environment(settings)["PREFECT_API_URL"] == "http://127.0.0.1:1/api"
        assert stack.environment(settings)["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:2"
        ui = stack.uis(settings)
        assert (ui["Prefect UI"], ui["MLflow UI"]) == ("http://127.0.0.1:1", "http://127.0.0.1:2")
        assert ui["Evidently UI"] == "mlstack up, then http://127.0.0.1:8002"
        monkeypatch.setenv("PREFECT_API_URL", "https://prefect.example.com/api")
        assert stack.uis(settings)["Prefect UI"] == "https://prefect.example.com"
        assert stack.environment(settings)["PREFECT_API_URL"] == "https://prefect.example.com/api"
    finally:
        child.kill()


def test_a_recorded_service_that_never_answers_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = get_settings()
    stuck = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    port = processes.free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        write("evidently", stuck.pid, processes.stamp_of(stuck.pid))
        monkeypatch.setattr(settings.orchestration, "up_timeout_s", 2.0)
        argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
        spec = stack.Spec("evidently", argv, url, lambda: processes.answers(url), port=port)
        line = stack._ensure(settings, lambda: spec, "evidently")
        assert line.state == "started" and line.note and "did not answer" in line.note
        assert stuck.wait(timeout=15) is not None  # the stuck one was stopped
        assert stack.live_record(settings, "evidently")[0].pid == line.pid
    finally:
        stuck.kill()
        stack.down(settings)
