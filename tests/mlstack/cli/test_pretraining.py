"""`mlstack pretrain`: options become parameters (bad ones refused before any work), and results
read as people expect."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlstack.cli import app
from mlstack.cli.pretraining import overrides, render_run
from tests.conftest import PROJECT_ROOT, rendered

runner = CliRunner()


def test_set_pairs_become_typed_overrides() -> None:
    assert overrides(["layers=8", "lr=0.001", "compile=true", "device=cuda"], 50) == {
        "layers": 8,
        "lr": 0.001,
        "compile": True,
        "device": "cuda",
        "steps": 50,
    }


def test_a_malformed_or_unknown_set_is_refused_before_any_work() -> None:
    bad = runner.invoke(app, ["pretrain", "train", "--set", "layers"])
    assert bad.exit_code == 1 and "--set 'layers': expected KEY=VALUE" in " ".join(bad.output.split())
    unknown = runner.invoke(app, ["pretrain", "run", "--set", "depth=3"], terminal_width=300)
    text = " ".join(unknown.output.split())
    assert unknown.exit_code == 2 and "--set: depth: not a preset value; known:" in text and "layers" in text


def test_every_step_is_a_command_with_help() -> None:
    text = " ".join(runner.invoke(app, ["pretrain", "--help"], terminal_width=200).output.split())
    for command in ("prepare", "tokenize", "train", "evaluate", "run"):
        assert command in text
    train = " ".join(runner.invoke(app, ["pretrain", "train", "--help"], terminal_width=200).output.split())
    assert "--resume" in train and "--nproc" in train and "torchrun" in train


def test_a_run_reads_from_corpus_to_registry(pretrain_result) -> None:
    text = rendered(render_run(pretrain_result), width=300)
    assert "quality 220 198 22 auto-generated 21, mostly non-text 1" in text
    assert "198 of 220 files kept: 7 held out for validation, the rest in 2 shards" in text
    assert (
        "834,000 training and 23,400 validation tokens (vocabulary 2,051);"
        " 0 shards tokenized now, 1 unchanged" in text
    )
    assert "300 steps, resumed from step 150: 1,049,216 parameters" in text and "MFU 5.0%" in text
    assert "25% of 16 held-out function headers completed into parsing Python" in text
    assert "code_lm v2, kept the champion (1.420 bits/byte vs champion v1" in text


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_prepare_prints_its_result_as_json(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(PROJECT_ROOT / "mlstack", source, ignore=shutil.ignore_patterns("__pycache__"))
    result = runner.invoke(app, ["pretrain", "prepare", "--source", f"dir:{source}", "--json"])
    assert result.exit_code == 0, result.output
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert parsed["documents_read"] >= len(
        list(source.rglob("*.py"))
    )  # other text files are read, then dropped
    assert 0 < parsed["documents_kept"] <= parsed["documents_read"]
    assert parsed["stages"][0] == {
        "stage": "read",
        "in": parsed["documents_read"],
        "out": parsed["documents_read"],
        "removed": 0,
        "why": "",
    }
