"""Shards: a split by content hash, token files with manifests, and reruns that skip what is done."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlstack.pretraining import Document, shards
from models.lm.tokenizer import train_tokenizer


@pytest.fixture(scope="module")
def tokenizer_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tok")
    train_tokenizer([f"def f{i}(x):\n    return x * {i}\n" for i in range(200)], 300).save_pretrained(folder)
    return folder / "tokenizer.json"


def corpus(n: int) -> list[Document]:
    return [Document(f"dir:c/m{i}.py", f"def f{i}(x):\n    return x + {i}\n") for i in range(n)]


def test_the_split_holds_out_by_hash_and_is_stable_as_the_corpus_grows(tmp_path: Path) -> None:
    first = shards.write(corpus(200), tmp_path / "a", 4, 0.1)
    grown = shards.write(corpus(300), tmp_path / "b", 4, 0.1)
    held = {d.path for d in shards.read_shard(first["validation"])}
    held_grown = {d.path for d in shards.read_shard(grown["validation"])}
    assert 5 < len(held) < 40 and held <= held_grown  # nobody moved from validation into training
    trained = {d.path for name, p in first.items() if name != "validation" for d in shards.read_shard(p)}
    assert not held & trained and len(held | trained) == 200


def test_tokens_round_trip_with_a_manifest_and_a_rerun_skips(tmp_path: Path, tokenizer_file: Path) -> None:
    from tokenizers import Tokenizer

    written = shards.write(corpus(40), tmp_path / "corpus", 2, 0.1)
    out = tmp_path / "tokens"
    done = shards.tokenize_shard(written["train-00000"], tokenizer_file, out)
    assert not done.skipped and done.dtype == "uint16"
    tokens = shards.load_tokens(out / "train-00000.bin")
    manifest = json.loads((out / "train-00000.json").read_text())
    assert tokens.size == manifest["tokens"] == sum(d["tokens"] for d in manifest["documents"])
    eos = Tokenizer.from_file(str(tokenizer_file)).token_to_id(shards.EOS)
    first_doc = np.asarray(tokens[: manifest["documents"][0]["tokens"] - 1])
    texts = [d.text for d in shards.read_shard(written["train-00000"])]
    assert Tokenizer.from_file(str(tokenizer_file)).decode(first_doc.tolist()) == texts[0]
    assert int(tokens[manifest["documents"][0]["tokens"] - 1]) == eos
    mtime = (out / "train-00000.bin").stat().st_mtime_ns
    again = shards.tokenize_shard(written["train-00000"], tokenizer_file, out)
    assert again.skipped and again.sha256 == done.sha256
    assert (out / "train-00000.bin").stat().st_mtime_ns == mtime


def test_a_shard_no_document_hashed_into_loads_as_no_tokens(tmp_path: Path, tokenizer_file: Path) -> None:
    """A small corpus over many shards leaves some empty; training skips them (it crashed on
    mapping the empty file)."""
    written = shards.write(corpus(3), tmp_path / "corpus", 16, 0.1)
    out = tmp_path / "tokens"
    for shard in written.values():
        shards.tokenize_shard(shard, tokenizer_file, out)
    sizes = [shards.load_tokens(path).size for path in sorted(out.glob("train-*.bin"))]
    assert 0 in sizes and sum(sizes) > 0


def test_a_changed_shard_or_a_torn_token_file_is_tokenized_again(
    tmp_path: Path, tokenizer_file: Path
) -> None:
    written = shards.write(corpus(40), tmp_path / "corpus", 1, 0.1)
    out = tmp_path / "tokens"
    shards.tokenize_shard(written["train-00000"], tokenizer_file, out)
    (out / "train-00000.bin").write_bytes(b"\x00\x00")  # a torn write
    assert not shards.tokenize_shard(written["train-00000"], tokenizer_file, out).skipped
    grown = shards.write(corpus(41), tmp_path / "corpus", 1, 0.1)
    redone = shards.tokenize_shard(grown["train-00000"], tokenizer_file, out)
    assert not redone.skipped


def test_an_unchanged_shard_keeps_its_file(tmp_path: Path) -> None:
    first = shards.write(corpus(30), tmp_path, 3, 0.1)
    before = {name: p.stat().st_mtime_ns for name, p in first.items()}
    again = shards.write(corpus(30), tmp_path, 3, 0.1)
    assert {name: p.stat().st_mtime_ns for name, p in again.items()} == before
