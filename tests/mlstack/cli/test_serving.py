"""`mlstack serve` and `serve-llm`: what they say on start, and a folder without a model."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlstack.cli import app
from mlstack.cli.serving import serving_banner
from mlstack.settings import Settings


def test_serve_llm_refuses_a_folder_without_a_model(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve-llm", "--model", str(tmp_path)], terminal_width=200)
    assert result.exit_code == 1 and "has no config.json" in result.output


def test_the_banner_says_where_to_point_clients() -> None:
    assert serving_banner("trip_duration", "127.0.0.1", 8000, 2) == (
        "serving trip_duration on http://127.0.0.1:8000 with 2 worker(s) (docs at http://127.0.0.1:8000/docs)"
    )
    assert serving_banner("/m/lm", "127.0.0.1", 8001, api="/v1").startswith(
        "serving /m/lm on http://127.0.0.1:8001/v1 "
    )


def test_an_unknown_log_level_is_a_usage_error() -> None:
    for command in ("serve", "serve-llm"):
        result = CliRunner().invoke(app, [command, "--log-level", "loud"], terminal_width=200)
        assert result.exit_code == 2 and "'loud' is not one of" in result.output, result.output


@pytest.mark.slow
def test_serve_logs_each_request_at_info_and_none_at_the_default(
    in_trained_home: Settings, tmp_path: Path
) -> None:
    import httpx

    from mlstack import processes

    lines = {}
    for level in ("info", "warning"):
        port = processes.free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "mlstack.cli", "serve", "--port", str(port), "--log-level", level]
        log = tmp_path / f"{level}.log"
        server = processes.start_service(
            argv, log, lambda url=url: processes.answers(f"{url}/docs"), 120, "mlstack serve"
        )
        try:
            assert httpx.get(f"{url}/openapi.json", timeout=10).status_code == 200
        finally:
            processes.stop(server)
        lines[level] = log.read_text()
    assert '"GET /openapi.json HTTP/1.1" 200' in lines["info"]
    assert "GET /openapi.json" not in lines["warning"]
