"""prefect.yaml and `mlstack deploy` without a server: every flow deployed, parameters that the
flows' models accept, pools, schedules and the drift trigger as declared, and bad input refused
before anything is applied."""

from __future__ import annotations

import importlib
import inspect
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from mlstack.deploy import project
from mlstack.errors import InputError
from monitoring.events import DRIFT_DETECTED
from tests.conftest import PROJECT_ROOT
from tests.kill import command_env, mlstack

DOC = project.load(PROJECT_ROOT / project.PREFECT_FILE)
DEPLOYMENTS = {entry["name"]: entry for entry in DOC["deployments"]}


def params_model(entrypoint: str) -> type[BaseModel]:
    module, _, function = entrypoint.partition(":")
    flow = getattr(importlib.import_module(module), function)
    annotation = inspect.signature(flow.fn).parameters["params"].annotation
    return getattr(importlib.import_module(module), annotation) if isinstance(annotation, str) else annotation


def test_every_flow_in_flows_has_a_deployment() -> None:
    flows = {ref.entrypoint for ref in project.flows_in(PROJECT_ROOT)}
    assert len(flows) >= 10
    assert flows == {entry["entrypoint"] for entry in DOC["deployments"]}


def test_the_file_passes_its_own_checks() -> None:
    path = PROJECT_ROOT / project.PREFECT_FILE
    assert project.problems(DOC, path, PROJECT_ROOT, {pool.name for pool in project.POOLS}) == []


@pytest.mark.parametrize("name", sorted(DEPLOYMENTS))
def test_each_deployment_is_described_pooled_and_takes_its_flows_parameters(name: str) -> None:
    entry = DEPLOYMENTS[name]
    assert entry["description"] and entry["tags"]
    assert entry["work_pool"]["name"] in {pool.name for pool in project.POOLS}
    model = params_model(entry["entrypoint"])
    given = entry.get("parameters")
    if given is None:  # the form asks for what the model requires
        assert any(field.is_required() for field in model.model_fields.values())
        return
    assert set(given) == {"params"}
    model.model_validate(given["params"])


def test_schedules_are_declared_and_pausable() -> None:
    def crons(name: str) -> list[dict[str, Any]]:
        return DEPLOYMENTS[name].get("schedules", [])

    assert [s["cron"].split()[1:] for s in crons("materialize")] == [["*", "*", "*", "*"]]  # hourly
    for name in ("score-daily", "monitor-daily"):
        (schedule,) = crons(name)
        assert schedule["cron"].split()[2:] == ["*", "*", "*"] and "*" not in schedule["cron"].split()[:2]
        assert isinstance(schedule["active"], bool)


def test_drift_retrains_through_a_trigger_with_one_run_at_a_time() -> None:
    retraining = DEPLOYMENTS["on-drift"]
    (trigger,) = retraining["triggers"]
    assert trigger["expect"] == [DRIFT_DETECTED]
    assert trigger["for_each"] == ["prefect.resource.id"]  # a cooldown per model
    assert trigger["within"] == "{{ $MLSTACK_RETRAIN_COOLDOWN }}"
    mapped = trigger["parameters"]["params"]
    assert {key: mapped[key] for key in ("model", "version", "until")} == {
        "model": "{{ event.payload.model }}",
        "version": "{{ event.payload.version }}",
        "until": "{{ event.payload.window_end }}",
    }
    assert retraining["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}


def test_the_retraining_schema_refuses_what_a_malformed_payload_renders() -> None:
    from prefect.utilities.schema_tools.validation import ValidationError, validate

    from flows.retraining import RetrainingParams

    schema = {"type": "object", "properties": {"params": RetrainingParams.model_json_schema()}}
    schema["definitions"] = schema["properties"]["params"].pop("$defs", {})
    good = {"model": "trip_duration", "version": "3", "until": "2026-09-15T00:00:00+00:00"}
    validate({"params": good}, schema, raise_on_error=True)
    for bad in ({"version": ""}, {"version": "v3"}, {"until": "soon"}, {"until": ""}, {"model": ""}):
        with pytest.raises(ValidationError):
            validate({"params": {**good, **bad}}, schema, raise_on_error=True)


def test_a_pool_override_moves_deployments_and_leaves_their_job_variables() -> None:
    doc = {
        "deployments": [
            {"name": "pretrain", "work_pool": {"name": "gpu", "job_variables": {"gpu_limit": 1}}},
            {"name": "train", "work_pool": {"name": "cpu"}},
        ]
    }
    moved = project.override_pools(doc, {"gpu": "cpu"})
    assert [entry["work_pool"] for entry in moved["deployments"]] == [{"name": "cpu"}, {"name": "cpu"}]
    assert doc["deployments"][0]["work_pool"]["name"] == "gpu"  # the original is untouched


def test_the_gpu_pool_asks_kubernetes_for_nvidia_gpus() -> None:
    template = project.gpu_job_template(gpus=4)
    container = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpu_limit }}"
    assert template["variables"]["properties"]["gpu_limit"]["maximum"] == 4
    gpu = DOC["definitions"]["work_pools"]["gpu"]
    assert gpu["job_variables"]["gpu_limit"] == 1


def test_a_missing_entrypoint_is_named_before_anything_is_applied(tmp_path: Path) -> None:
    broken = yaml.safe_load((PROJECT_ROOT / project.PREFECT_FILE).read_text())
    broken["deployments"][2]["entrypoint"] = "flows.nowhere:training_flow"
    broken["deployments"][3]["entrypoint"] = "flows.training:no_such_flow"
    path = tmp_path / "prefect.yaml"
    path.write_text(yaml.safe_dump(broken))
    # An API that nobody serves: the file's check must come first and stop the command.
    env = command_env(tmp_path / "home", PREFECT_API_URL="http://127.0.0.1:9/api")
    done = subprocess.run(mlstack("deploy", "--file", str(path)), env=env, capture_output=True, text=True)
    assert done.returncode == 1
    assert "flows.nowhere:training_flow: flows/nowhere.py does not exist" in done.stderr
    assert "defines no @flow named no_such_flow" in done.stderr
    assert "Nothing was applied" in done.stderr and "cannot reach" not in done.stderr


def test_an_unreachable_api_is_one_clear_line(tmp_path: Path) -> None:
    env = command_env(tmp_path / "home", PREFECT_API_URL="http://127.0.0.1:9/api")
    done = subprocess.run(mlstack("deploy"), env=env, capture_output=True, text=True)
    assert done.returncode == 1
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: cannot reach the Prefect API at http://127.0.0.1:9/api")
    assert "mlstack up" in line


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "prefect.yaml"
    path.write_text("deployments:\n  - name: x\n    tags: [a, b\n")
    with pytest.raises(InputError, match=r"prefect.yaml:\d+:\d+: not valid YAML"):
        project.load(path)
