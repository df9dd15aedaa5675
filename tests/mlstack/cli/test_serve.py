"""`mlstack serve` and `serve-llm`: what they say on start, and a folder without a model."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mlstack.cli import app
from mlstack.cli.serve import serving_banner


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
