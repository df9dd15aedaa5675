"""`mlstack features`: what apply and materialize print."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlstack.cli import app
from mlstack.cli.features import render_applied, render_materialized
from mlstack.settings import Settings


def test_apply_and_materialize_render() -> None:
    tables = {
        "driver_hourly": Path("/d/driver_hourly.parquet"),
        "zone_hourly": Path("/d/zone_hourly.parquet"),
    }
    assert render_applied(["driver_hourly", "zone_hourly"], tables) == (
        "applied feature views driver_hourly, zone_hourly; offline tables: /d/driver_hourly.parquet,"
        " /d/zone_hourly.parquet"
    )
    at = datetime(2026, 9, 15, 0, 0, 1, tzinfo=UTC)
    assert render_materialized(at) == "online store loaded up to 2026-09-15 00:00:01+00:00"


def test_apply_without_validated_data_says_what_to_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["features", "apply", "--validated", str(tmp_path)])
    assert result.exit_code == 1
    assert "holds no validated trips.parquet: run `mlstack data flow`" in " ".join(result.output.split())


def test_the_committed_feature_store_yaml_is_the_sdk_config_for_the_default_data_dir() -> None:
    import yaml

    from mlstack.features import repo_path, store_config
    from mlstack.settings import project_root

    committed = yaml.safe_load((repo_path() / "feature_store.yaml").read_text())
    expected = store_config(project_root() / ".mlstack")
    for key in ("registry",):
        committed[key] = str((repo_path() / committed[key]).resolve())
    committed["online_store"]["path"] = str((repo_path() / committed["online_store"]["path"]).resolve())
    assert committed == expected


def test_ui_and_serve_need_an_applied_repo() -> None:
    for command in ("ui", "serve"):
        result = CliRunner().invoke(app, ["features", command])
        assert result.exit_code == 1 and "run `mlstack features apply` first" in result.output


@pytest.mark.slow
def test_feast_serve_answers_from_the_data_dir_in_use(in_trained_home: Settings, tmp_path: Path) -> None:
    """The trained data dir is a temporary folder, not the checkout's .mlstack/."""
    import httpx

    from mlstack import processes
    from mlstack.features import offline_paths

    port = processes.free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "mlstack.cli", "features", "serve", "--port", str(port)]
    server = processes.start_service(
        argv, tmp_path / "feast.log", lambda: processes.answers(f"{url}/health"), 180, "feast serve"
    )
    try:
        drivers = pd.read_parquet(offline_paths(in_trained_home)["driver_hourly"])["driver_id"]
        asked = {"features": ["driver_hourly:rating"], "entities": {"driver_id": [int(drivers.iloc[0])]}}
        answer = httpx.post(f"{url}/get-online-features", json=asked, timeout=30)
    finally:
        processes.stop(server)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert results[1]["statuses"] == ["PRESENT"] and isinstance(results[1]["values"][0], float)
    assert (in_trained_home.home / "feast" / "feature_store.yaml").read_text().count(
        str(in_trained_home.home)
    ) == 2


@pytest.mark.slow
@pytest.mark.parametrize(("command", "path"), [("ui", "/health"), ("serve", "/health")])
def test_feasts_ui_and_server_start_on_the_data_dir_and_answer(
    own_trained_home: Settings, tmp_path: Path, command: str, path: str
) -> None:
    """`features ui` needs Feast's registry server, hence grpcio (`feast[grpcio]`): without it the
    command died at once with `No module named 'grpc'`."""
    import os
    import signal
    import subprocess
    import time

    import httpx
    import psutil

    from mlstack import processes
    from tests.kill import command_env, mlstack

    port = processes.free_port()
    log = tmp_path / f"feast-{command}.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            mlstack("features", command, "--port", str(port)),
            env=command_env(own_trained_home.home),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline, answer = time.monotonic() + 120, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert answer is not None and answer.status_code == 200, log.read_text()[-3000:]
        assert f"feast {command} on http://127.0.0.1:{port}" in log.read_text()
        if command == "ui":  # the UI's page itself, over the data dir's registry
            assert "<html" in httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text.lower()
    finally:  # the whole session: `feast serve` answers from a worker process of its own
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(port) in " ".join(p.info["cmdline"] or [])]
