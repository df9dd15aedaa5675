"""The pretraining flows end to end under the Prefect harness, on click and jinja2: a registered
champion that becomes the local model, reruns that skip what is done, and a bad corpus that stops."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from flows.pretraining import (
    EvaluateParams,
    PrepareParams,
    PretrainParams,
    TokenizeParams,
    evaluate_flow,
    prepare_flow,
    pretraining_flow,
    tokenize_flow,
    train_flow,
)
from mlstack.llm.local_server import follows_chat, local_model_dir, model_note
from mlstack.pretraining import CorpusError
from mlstack.settings import get_settings

SMALL = {
    "steps": 12,
    "micro_batch": 8,
    "seq_len": 64,
    "layers": 2,
    "hidden_size": 64,
    "heads": 2,
    "context": 64,
    "eval_every": 6,
    "checkpoint_every": 6,
    "lr": 1e-2,
    "warmup": 2,
}


@pytest.mark.parametrize("flow", [train_flow, pretraining_flow], ids=["pretrain-train", "pretrain-run"])
def test_an_unknown_override_in_a_deployment_runs_parameters_is_refused_naming_the_key(flow) -> None:
    """A run from a deployment or the UI's form reaches the flow as JSON parameters, and Prefect's
    engine checks them with `validate_parameters` before the flow starts (a failed run, no work):
    the same check, by the parameters model, that refuses the CLI's --set."""
    from prefect.exceptions import ParameterTypeError

    with pytest.raises(ParameterTypeError, match=r"depth: not a preset value; known: .*layers"):
        flow.validate_parameters({"params": {"overrides": {"depth": 3, "steps": 5}}})
    checked = flow.validate_parameters({"params": {"overrides": {"layers": 3, "steps": 5}}})
    assert checked["params"].overrides == {"layers": 3, "steps": 5}


@pytest.mark.slow
def test_a_deployment_run_with_an_unknown_override_fails_before_any_work(prefect_harness) -> None:
    """As a worker runs a deployment's flow run: the run's stored JSON parameters, through
    Prefect's engine. The server takes them (the schema allows any key in `overrides`); the
    engine's check of the parameters model fails the run, naming the key, before any step."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.flow_engine import run_flow
    from prefect.utilities.callables import parameter_schema

    with get_client(sync_client=True) as client:
        deployment_id = client.create_deployment(
            client.create_flow(train_flow),
            "override-check",
            entrypoint="flows.pretraining.train:train_flow",
            parameter_openapi_schema=parameter_schema(train_flow.fn).model_dump(),
            enforce_parameter_schema=True,
        )
        run = client.create_flow_run_from_deployment(
            deployment_id, parameters={"params": {"overrides": {"depth": 3, "steps": 5}}}
        )
        state = run_flow(train_flow, flow_run=run, parameters=run.parameters, return_type="state")
        message = str(state.message)
        assert state.is_failed() and message.startswith("Validation of flow parameters failed"), message
        assert "depth: not a preset value" in message, message
        stored = client.read_flow_run(run.id)
        assert stored.state is not None and stored.state.is_failed()
        ran = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
        assert ran == []


@pytest.mark.slow
def test_raw_code_becomes_the_local_model(prefect_harness, mlstack_home: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLSTACK_PRETRAIN_SHARDS", "2")
    result = pretraining_flow(PretrainParams(sources=["packages:click,jinja2"], overrides=SMALL))
    assert (
        result.prepare.documents_kept > 20 and result.prepare.stages[0]["in"] == result.prepare.documents_read
    )
    assert set(result.prepare.shards) == {"train-00000", "train-00001", "validation"}
    assert result.tokenize.train_tokens > 100_000 and not any(s.skipped for s in result.tokenize.shards)
    assert (
        result.train.steps == 12
        and result.train.val_loss < math.log(result.tokenize.vocab_size)
        and result.train.mfu is not None
    )
    evaluated = result.evaluate
    assert evaluated.version == "1" and evaluated.promoted and evaluated.reason == "no champion yet"
    assert 0 < evaluated.bits_per_byte < 8 and evaluated.headers > 0
    settings = get_settings()
    champion = local_model_dir(settings)
    assert champion.name == "code_lm-v1" and (champion / "model.safetensors").is_file()
    assert not follows_chat(champion) and "pretrained here" in model_note(champion)

    # Rerun the steps: nothing to tokenize again, and the same model is no better than itself.
    again = tokenize_flow(TokenizeParams())
    assert all(s.skipped for s in again.shards)
    second = evaluate_flow(EvaluateParams())
    assert second.version == "2" and not second.promoted and "vs champion v1" in second.reason
    assert local_model_dir(settings).name == "code_lm-v1"


@pytest.mark.slow
def test_a_corpus_with_no_python_stops_with_a_clear_message(
    prefect_harness, mlstack_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "site").mkdir()
    for i in range(30):
        (tmp_path / "site" / f"page{i}.html").write_text(f"<html><body>{i}</body></html>")
    state = prepare_flow(PrepareParams(sources=[f"dir:{tmp_path / 'site'}"]), return_state=True)
    assert state.is_failed()
    with pytest.raises(CorpusError, match=r"too small: 0 of 30 files survive cleaning \(.*language -30"):
        state.result()
