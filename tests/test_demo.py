"""End to end: the demo flow runs the classic loop and the monitoring loop under a real Prefect server."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.demo import demo_flow
from mlstack import postgres
from mlstack.settings import get_settings


@pytest.mark.slow
def test_demo_runs_the_classic_loop_end_to_end(prefect_harness, mlstack_home: Path) -> None:
    state = demo_flow(days=7, trials=1, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()

    assert set(result["data"]) == {"trips", "driver_stats", "zone_stats"}
    assert result["features"]["views"] == ["driver_hourly", "zone_hourly"]
    assert result["training"]["promoted"] and result["training"]["version"] == "1"
    assert result["batch inference"]["rows"] > 0 and result["batch inference"]["model_versions"] == ["1"]
    online = result["online"]["response"]
    assert online["model_version"] == "1" and online["predicted_duration_s"] > 0 and online["fallback"] == []
    settings = get_settings()
    assert settings.tracking_uri in result["where"]["MLflow UI"]
    assert Path(result["where"]["validation report"]).is_file()
    # Time moves on: a normal day passes quietly, three drifting days alert and retrain.
    quiet, drifting = result["baseline window"], result["drift window"]
    assert quiet["status"] == "ok" and quiet["retraining"] is None, quiet["reasons"]
    assert drifting["status"] == "drift" and drifting["dataset_drift"]
    assert drifting["retraining"]["version"] == "2" and drifting["retraining"]["promoted"]
    assert Path(drifting["reports"]["drift"]).is_file()
    # Last, one question to the local model (the untrained stand-in) through its endpoint.
    asked = result["prompt engineering"]
    assert asked["provider"] == "local" and asked["model"] == "untrained-lm" and not asked["meaningful"]
    assert asked["answer"] and asked["prompt"] == "prompts:/ask_in_context/1"
    assert set(asked["checks"]) >= {"sentences", "links", "links_well_formed", "passed"}
    with postgres.connect(settings) as conn:
        assert conn.execute("SELECT count(*) FROM trip_predictions").fetchone()[0] == (
            result["batch inference"]["rows"] + quiet["current_rows"] + drifting["current_rows"]
        )
    postgres.stop_embedded(settings.pg_dir)
