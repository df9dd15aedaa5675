"""The error boundary and flow runs every command shares, run as users run it: a real `mlstack`
process, its data dir's local Prefect API, killed or fed bad input."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import copy_trained_home
from tests.kill import command_env, kill_when, mlstack, output_has, run, start_together

SERVER = "mlstack.deploy.api"


@pytest.fixture(scope="module")
def cli_home(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the trained data dir that these commands may change (its paths its own)."""
    return copy_trained_home(trained_home, tmp_path_factory.mktemp("cli") / "home")


def corrupt_folder(folder: Path, extra_column_from: Path | None = None) -> Path:
    """Random bytes in each table's file; or, given a validated folder, its tables with one
    column too many in trips."""
    import pandas as pd

    folder.mkdir(parents=True)
    for table in ("trips", "driver_stats", "zone_stats"):
        target = folder / f"{table}.parquet"
        if extra_column_from is None:
            target.write_bytes(b"\x8f\x01 random bytes, not parquet " * 40)
            continue
        frame = pd.read_parquet(extra_column_from / f"{table}.parquet")
        (frame.assign(surge_multiplier=1.0) if table == "trips" else frame).to_parquet(target)
    return folder


@pytest.mark.slow
def test_bad_inputs_end_in_one_line_and_a_nonzero_exit(cli_home: Path, tmp_path: Path) -> None:
    corrupt = corrupt_folder(tmp_path / "corrupt")
    extra = corrupt_folder(tmp_path / "extra", extra_column_from=cli_home / "data" / "validated")
    cases = [  # (arguments, exit code, what the one line says)
        (["predict-batch", "--start", "2026-09-12", "--end", "2026-09-01"], 2, "the window is empty"),
        (["monitor", "--window-start", "2026-09-12", "--window-end", "2026-09-01"], 2, "the window is empty"),
        (["predict-batch", "--start", "2030-01-01", "--end", "2030-01-02"], 1, "no trips were requested"),
        (["evaluate", "--model", "/none", "--out", "x.json", "--plots", "p"], 1, "not an MLflow model"),
        (["features", "apply", "--validated", str(corrupt)], 1, "trips.parquet: not a readable parquet"),
        (["features", "apply", "--validated", str(extra)], 1, "does not match the trips contract"),
        (["train", "--trials", "1", "--validated", "/nonexistent"], 1, "holds no validated trips.parquet"),
        (["train", "--trials", "1", "--validated", str(corrupt)], 1, "not a readable parquet"),
        (["ask", "--file", "/nonexistent.jsonl"], 1, "/nonexistent.jsonl: no such file"),
    ]
    results = start_together([mlstack(*args) for args, _, _ in cases], command_env(cli_home))
    for (args, code, says), result in zip(cases, results, strict=True):
        everything = result.stdout + result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == code, (args, everything[-3000:])
        assert "Traceback" not in everything, (args, everything[-3000:])
        assert len(errors) == 1 and says in errors[0], (args, result.stderr[-2000:])
    assert "surge_multiplier" in results[5].stderr, "the extra column is named"


@pytest.mark.slow
def test_a_killed_command_leaves_no_process_that_does_not_stop_itself(cli_home: Path, tmp_path: Path) -> None:
    """The local API it started outlives it only until its idle time has passed."""
    env = command_env(tmp_path / "home")
    log = tmp_path / "data.log"
    started = output_has(log, "Beginning flow run")  # the server is up and serving the run
    killed = kill_when(mlstack("data", "flow", "--days", "3"), env, when=started, log=log)
    assert len(killed.started(SERVER)) == 1, killed.output
    assert killed.survivors() == []


@pytest.mark.slow
def test_commands_reuse_the_local_api_and_down_stops_it(tmp_path: Path) -> None:
    """The first command pays Prefect's server start (10-14 s on 2 cores); the next finds it."""
    import psutil

    from mlstack.deploy import stack
    from mlstack.settings import Settings

    home = tmp_path / "home"
    env = command_env(home, MLSTACK_ORCHESTRATION_API_IDLE_S="120")
    settings = Settings(home=home)
    first = run(mlstack("data", "flow", "--days", "1"), env)
    assert first.returncode == 0, first.stderr[-2000:]
    record, _ = stack.live_record(settings, "api")
    assert record is not None and "mlstack.deploy.api" in " ".join(psutil.Process(record.pid).cmdline())
    second = run(mlstack("data", "flow", "--days", "1"), env)
    assert second.returncode == 0, second.stderr[-2000:]
    again, _ = stack.live_record(settings, "api")
    assert again is not None and again.pid == record.pid  # reused, not started again
    down = run(mlstack("down"), env)
    assert down.returncode == 0 and "api" in down.stdout, down.stdout
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(record.pid).wait(30)
    assert not psutil.pid_exists(record.pid)
    assert stack.live_record(settings, "api") == (None, False)


def _runs(database: Path, status: str) -> set[str]:
    with sqlite3.connect(database) as db:
        return {row[0] for row in db.execute("SELECT run_uuid FROM runs WHERE status = ?", (status,))}


@pytest.mark.slow
def test_a_killed_train_leaves_a_registry_that_reads_back(cli_home: Path, tmp_path: Path) -> None:
    env = command_env(cli_home)
    database = cli_home / "mlflow" / "mlflow.db"
    log = tmp_path / "train.log"
    in_trials = output_has(log, "trial 1/40 done")
    killed = kill_when(mlstack("train", "--trials", "40"), env, when=in_trials, log=log)
    assert killed.survivors() == []
    # The training run, and a trial's nested run unless the kill fell between two trials.
    left_running = _runs(database, "RUNNING")
    assert len(left_running) >= 1

    status = run(mlstack("model", "status"), env)
    assert status.returncode == 0, status.stderr
    assert "champion" in status.stdout
    as_json = run(mlstack("model", "status", "--json"), env)
    assert json.loads(as_json.stdout)["champion"] == "1", as_json.stderr
    # Every version on one window: the champion scored; a killed run's version, with no model, not.
    newest = json.loads(as_json.stdout)["newest_window"]
    assert newest["rows"] > 0 and newest["mae"]["1"] > 0
    assert all(mae is None for version, mae in newest["mae"].items() if version != "1")
    assert _runs(database, "RUNNING") == set()
    assert left_running <= _runs(database, "KILLED")
    with sqlite3.connect(database) as db:
        aliases = (
            "SELECT version FROM registered_model_aliases WHERE alias = 'champion' AND name = 'trip_duration'"
        )
        assert db.execute(aliases).fetchall() == [(1,)], "the champion is untouched"


def test_a_warm_process_that_cannot_start_fails_no_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting the warm process is a speed-up for the next command: a busy stack lock or a full
    disk there must not turn a command whose flow completed into a failure."""
    from mlstack.cli import running, warm
    from mlstack.errors import Busy

    def busy(*_: object) -> None:
        raise Busy("the stack folder is locked")

    monkeypatch.setenv("MLSTACK_ORCHESTRATION_WARM", "true")
    monkeypatch.setattr(warm, "ORIGIN", warm.Origin({}, "/", "f" * 24))
    monkeypatch.setattr(warm, "start", busy)

    from flows.data import data_flow

    running._keep_warm(data_flow)  # no exception
