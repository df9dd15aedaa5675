"""The fine-tuning flows under the Prefect harness: a review round answered through the Prefect
API (only approved pairs reach training; a rerun asks nothing; an unanswered form times out and
the run goes on), and a local LoRA run that is registered, gated and becomes the local model."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from flows.fine_tuning import (
    DatasetParams,
    FineTuningParams,
    IngestParams,
    dataset_flow,
    fine_tuning_flow,
    ingest_flow,
)
from mlstack import processes, tracking
from mlstack.fine_tuning import SAMPLE_DUMP, chat
from mlstack.llm.local_server import follows_chat, local_model_dir
from mlstack.settings import get_settings


def paused_runs() -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        state = FlowRunFilterStateType(any_=[StateType.PAUSED])
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(state={"type": state}))


def in_thread(params: DatasetParams) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def target() -> None:
        try:
            out["result"] = dataset_flow(params)
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def wait_for_pause(thread: threading.Thread, timeout_s: float = 60) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and thread.is_alive():
        if runs := paused_runs():
            return runs[0]
        time.sleep(0.5)
    raise AssertionError("the review never paused")


def answers(path: Path) -> dict[str, str]:
    return {
        e["messages"][1]["content"].splitlines()[0]: e["messages"][2]["content"]
        for e in chat.read_jsonl(path)
    }


@pytest.mark.slow
def test_a_review_round_through_the_api(
    prefect_harness, tiny_lm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.flow_runs import resume_flow_run

    monkeypatch.setenv("MLSTACK_FINETUNE_REVIEW_PAGE_SIZE", "100")
    dump = tmp_path / "github.json"
    dump.write_text(SAMPLE_DUMP.read_text())
    source = f"github:{dump}"
    ingested = ingest_flow(IngestParams(source=source))
    params = DatasetParams(source=source, review=True, base=tiny_lm)

    thread, out = in_thread(params)
    run = wait_for_pause(thread)
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        described = client.read_flow_run_input(run.id, "paused-review-1-description")  # the page, for the UI
    assert "Review page 1 of 1" in described
    resume_flow_run(
        run.id,
        run_input={
            "reviewer": "ana",
            "pair_1": "drop",
            "answer_2": "Edited: set MLSTACK_HOME, and that is all.",
        },
    )
    thread.join(120)
    assert "error" not in out, out.get("error")
    result = out["result"]
    assert result.review == {"approved": ingested.pairs - 2, "edited": 1, "dropped": 1}
    shown = answers(result.train_file) | answers(result.validation_file)
    assert len(shown) == ingested.pairs - 1
    assert "Edited: set MLSTACK_HOME, and that is all." in shown.values()
    decisions = json.loads(next((get_settings().finetune_dir / "reviews").glob("*.json")).read_text())
    assert sorted(d["decision"] for d in decisions.values()).count("dropped") == 1
    assert {d["by"] for d in decisions.values()} == {"ana"}

    # Nothing new: no form, the same dataset.
    again = dataset_flow(params)
    assert again.review == result.review and not paused_runs()
    assert answers(again.train_file) == answers(result.train_file)

    # A new issue nobody answers in time: the run goes on with the pairs approved so far.
    data = json.loads(dump.read_text())
    new = dict(data["issues"][0], number=999, id=999999, title="A new question nobody reviews")
    new |= {"url": new["url"].replace("/101", "/999"), "html_url": new["html_url"].replace("/101", "/999")}
    data["issues"].append(new)
    data["comments"].append(
        dict(data["comments"][0], issue_url=new["url"], body="A maintainer answer long enough to be a pair.")
    )
    dump.write_text(json.dumps(data))
    assert ingest_flow(IngestParams(source=source)).pairs == ingested.pairs + 1
    monkeypatch.setenv("MLSTACK_FINETUNE_REVIEW_TIMEOUT_S", "3")
    late = dataset_flow(params)
    assert late.review_timed_out and late.review == {**result.review, "undecided": 1}
    assert "A new question nobody reviews" not in answers(late.train_file) | answers(late.validation_file)


@pytest.mark.slow
def test_a_local_run_is_registered_gated_and_becomes_the_local_model(prefect_harness, tiny_lm: Path) -> None:
    first = fine_tuning_flow(FineTuningParams(base=tiny_lm, steps=15))
    trained, evaluated = first.train, first.evaluate
    assert trained.metrics["val_loss_after"] < trained.metrics["val_loss_before"]
    assert evaluated.promoted and evaluated.version == "1" and "no champion yet" in evaluated.reason
    assert evaluated.scores["fine-tuned"]["loss"] < evaluated.scores["base"]["loss"]
    settings = get_settings()
    model = local_model_dir(settings)
    assert model.name == "support_lm-v1" and follows_chat(model)

    import mlflow

    run = mlflow.get_run(trained.mlflow_run_id)
    assert run.data.metrics["rouge_l"] == evaluated.scores["fine-tuned"]["rouge_l"]
    # Its writer is on record: had this process been killed, the next setup would settle the run
    # as KILLED, and a run still being written by another process is left alone.
    assert run.data.tags[tracking.OWNER_TAG] == processes.owner() and run.info.status == "FINISHED"
    assert run.data.params["backend"] == "local"

    # The same data and seed give the same model: it does not beat the champion, which stays.
    second = fine_tuning_flow(FineTuningParams(base=tiny_lm, steps=15))
    assert not second.evaluate.promoted and "champion v1" in second.evaluate.reason
    assert second.ingest.rewritten == []
    assert local_model_dir(settings).name == "support_lm-v1"


@pytest.mark.slow
def test_an_unreadable_source_writes_nothing(prefect_harness, tmp_path: Path) -> None:
    from mlstack.fine_tuning import FinetuneError

    dump = tmp_path / "broken.json"
    dump.write_text('{"issues": [')
    with pytest.raises(FinetuneError, match=r"unreadable JSON .* Nothing was written"):
        ingest_flow(IngestParams(source=f"github:{dump}"))
    assert not (get_settings().finetune_dir / "partitions").exists()
