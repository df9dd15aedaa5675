"""The training loop on a real (small) corpus: it learns, it resumes after a kill on the same
curve, and two DDP processes match one with the same global batch."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.lm import checkpoint
from models.lm.train import TrainConfig, lr_at, train
from tests.models.lm.conftest import TokenCorpus, config

# gloo's all-reduce sums in another order than one process's backward: equal to float precision.
DDP_TOLERANCE = 1e-4


def losses(run_dir: Path) -> dict[int, float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {row["step"]: row["loss"] for row in map(json.loads, lines)}


def test_the_schedule_warms_up_then_decays_to_its_floor() -> None:
    c = TrainConfig(run_dir=Path("r"), tokens_dir=Path("t"), tokenizer_dir=Path("k"), steps=100, warmup=10)
    assert lr_at(0, c) == pytest.approx(c.lr / 10) and lr_at(9, c) == pytest.approx(c.lr)
    assert lr_at(10, c) == pytest.approx(c.lr) and lr_at(100, c) == pytest.approx(c.lr * c.min_lr_ratio)
    assert lr_at(50, c) < lr_at(20, c)


def test_a_tiny_run_lowers_validation_loss_and_saves_a_model(
    token_corpus: TokenCorpus, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    result = train(config(token_corpus, tmp_path))
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    val = [r["val_loss"] for r in rows if "val_loss" in r]
    # An untrained model scores about ln(vocabulary); this one is well below, and still falling.
    assert len(val) == 3 and val[-1] < val[1] < val[0] < math.log(512) - 0.8
    assert result.val_loss == val[-1] and result.tokens == 30 * 8 * 64
    assert all(r["tokens_per_s"] > 0 and r["mfu"] > 0 for r in rows)
    card = json.loads((result.model_dir / "mlstack_lm.json").read_text())
    assert card["trained"] and not card["chat"] and card["parameters"] == result.parameters
    assert AutoModelForCausalLM.from_pretrained(result.model_dir).num_parameters() == result.parameters
    assert [p.name for p in checkpoint.checkpoints(tmp_path / "checkpoints")] == [
        "step-00000020.pt",
        "step-00000030.pt",
    ]


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint_on_the_same_curve(
    token_corpus: TokenCorpus, tmp_path: Path
) -> None:
    reference = train(config(token_corpus, tmp_path / "reference", checkpoint_every=5))
    killed = config(token_corpus, tmp_path / "killed", checkpoint_every=5)
    killed.run_dir.mkdir(parents=True)
    (killed.run_dir / "config.json").write_text(killed.model_dump_json())
    process = subprocess.Popen(
        [sys.executable, "-m", "models.lm.train", "--config", str(killed.run_dir / "config.json")],
        env={**os.environ, "OMP_NUM_THREADS": str(__import__("torch").get_num_threads())},
    )
    folder, deadline = killed.run_dir / "checkpoints", time.monotonic() + 120
    while checkpoint.latest(folder) is None or checkpoint.latest(folder).name < "step-00000015.pt":
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it was killed"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    last = int(checkpoint.latest(folder).name[5:13])
    assert 15 <= last < 30
    resumed = train(killed.model_copy(update={"resume": True}))
    assert resumed.resumed_from == last and resumed.steps == 30
    curve, expected = losses(killed.run_dir), losses(reference.model_dir.parent)
    assert sorted(curve) == list(range(1, 31))  # no step lost, none logged twice
    for step in range(1, 31):
        assert curve[step] == pytest.approx(expected[step], abs=1e-5), step
    assert resumed.val_loss == pytest.approx(reference.val_loss, abs=1e-5)


@pytest.mark.slow
def test_two_ddp_processes_match_one_with_the_same_global_batch(
    token_corpus: TokenCorpus, tmp_path: Path
) -> None:
    single = train(config(token_corpus, tmp_path / "one", steps=8, micro_batch=8, eval_every=8))
    two = config(token_corpus, tmp_path / "two", steps=8, micro_batch=4, eval_every=8)
    two.run_dir.mkdir(parents=True)
    (two.run_dir / "config.json").write_text(two.model_dump_json())
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    command += ["-m", "models.lm.train", "--config", str(two.run_dir / "config.json")]
    command += ["--result", str(two.run_dir / "result.json")]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    result = json.loads((two.run_dir / "result.json").read_text())
    one_curve, two_curve = losses(tmp_path / "one"), losses(two.run_dir)
    assert sorted(two_curve) == list(range(1, 9))
    for step in range(1, 9):
        assert two_curve[step] == pytest.approx(one_curve[step], abs=DDP_TOLERANCE), step
    assert result["val_loss"] == pytest.approx(single.val_loss, abs=DDP_TOLERANCE)
    assert result["tokens"] == single.tokens  # the same global batch
