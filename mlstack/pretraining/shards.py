"""The cleaned corpus on disk, and its tokens.

`write` splits the documents by their hash: a fixed share into the held-out validation shard,
the rest into N training shards (JSON lines). The split depends on the content alone, so a
document never moves between training and validation when the corpus grows, and a shard whose
documents did not change is byte for byte the same file.

`tokenize_shard` turns one shard into a flat token file (uint16 when the vocabulary fits, else
uint32), documents separated by the end-of-text token, with a manifest beside it: its documents,
token count, hash, and the hashes of the shard and the tokenizer it came from. A shard already
tokenized from the same inputs is skipped. Shards are the unit of parallelism: each tokenizes on
one core (TOKENIZERS_PARALLELISM off), and the flow maps them over the task runner.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlstack.io import atomic_file, file_hash, write_json
from mlstack.pretraining import CorpusError, Document

VALIDATION = "validation"
EOS = "<|endoftext|>"


def is_validation(doc_hash: str, share: float) -> bool:
    return int(doc_hash[8:16], 16) / 2**32 < share


def shard_name(index: int) -> str:
    return f"train-{index:05d}"


def _write_atomic(path: Path, data: bytes) -> None:
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def write(documents: list[Document], out_dir: Path, shards: int, validation_share: float) -> dict[str, Path]:
    """Shard name -> path of every shard written (validation included); the old ones go."""
    parts: dict[str, list[Document]] = {shard_name(i): [] for i in range(shards)} | {VALIDATION: []}
    for doc in sorted(documents, key=lambda d: d.path):
        digest = doc.hash
        name = (
            VALIDATION
            if is_validation(digest, validation_share)
            else shard_name(int(digest[:8], 16) % shards)
        )
        parts[name].append(doc)
    if not parts[VALIDATION]:  # a tiny corpus can miss the share: hold out one document anyway
        donor = max((n for n in parts if n != VALIDATION), key=lambda n: len(parts[n]))
        parts[VALIDATION].append(parts[donor].pop())
    if not any(parts[n] for n in parts if n != VALIDATION):
        raise CorpusError(f"{len(documents)} documents leave nothing to train on after the validation split")
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.jsonl"):
        if stale.stem not in parts:
            stale.unlink()
    written = {}
    for name, docs in parts.items():
        lines = (
            json.dumps({"path": d.path, "license": d.license, "hash": d.hash, "text": d.text}) for d in docs
        )
        data = "".join(line + "\n" for line in lines).encode()
        path = out_dir / f"{name}.jsonl"
        if not (path.is_file() and path.read_bytes() == data):  # unchanged shards keep their file
            _write_atomic(path, data)
        written[name] = path
    return written


def read_shard(path: Path) -> Iterator[Document]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            yield Document(row["path"], row["text"], row["license"])


@dataclass(frozen=True)
class TokenShard:
    name: str
    tokens: int
    documents: int
    dtype: str
    sha256: str
    skipped: bool

    @classmethod
    def of(cls, manifest: dict, skipped: bool) -> TokenShard:
        return cls(
            manifest["name"],
            manifest["tokens"],
            len(manifest["documents"]),
            manifest["dtype"],
            manifest["sha256"],
            skipped,
        )


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.uint32)


def tokenize_shard(shard: Path, tokenizer_file: Path, out_dir: Path) -> TokenShard:
    """`out_dir/NAME.bin` and `NAME.json` for one shard, unless they exist from the same inputs."""
    from tokenizers import Tokenizer

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the shards are the parallelism
    inputs = {"input": file_hash(shard), "tokenizer": file_hash(tokenizer_file)}
    bin_path, manifest_path = out_dir / f"{shard.stem}.bin", out_dir / f"{shard.stem}.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        size = manifest["tokens"] * np.dtype(manifest["dtype"]).itemsize
        if (
            all(manifest.get(k) == v for k, v in inputs.items())
            and bin_path.is_file()
            and bin_path.stat().st_size == size
        ):
            return TokenShard.of(manifest, skipped=True)
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    eos = tokenizer.token_to_id(EOS)
    if eos is None:
        raise CorpusError(f"{tokenizer_file} has no {EOS} token to separate documents")
    dtype = token_dtype(tokenizer.get_vocab_size())
    docs = list(read_shard(shard))
    encodings = tokenizer.encode_batch_fast([d.text for d in docs], add_special_tokens=False)
    eos_array = np.array([eos], dtype=dtype)
    arrays = [a for e in encodings for a in (np.asarray(e.ids, dtype=dtype), eos_array)]
    tokens = np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = tokens.tobytes()
    _write_atomic(bin_path, data)
    manifest = {
        "name": shard.stem,
        "tokens": int(tokens.size),
        "dtype": dtype.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "documents": [
            {"path": d.path, "tokens": len(e.ids) + 1} for d, e in zip(docs, encodings, strict=True)
        ],
        **inputs,
    }
    write_json(manifest, manifest_path)  # last: a manifest only ever describes a whole token file
    return TokenShard.of(manifest, skipped=False)


def load_tokens(path: Path) -> np.ndarray:
    """A token file as a read-only memory map, its dtype from the manifest beside it."""
    manifest = json.loads(path.with_suffix(".json").read_text())
    dtype = np.dtype(manifest["dtype"])
    if manifest["tokens"] == 0:  # a shard no document hashed into: mmap refuses an empty file
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=(manifest["tokens"],))


@dataclass(frozen=True)
class Layout:
    """Where each stage of pretraining keeps its output, under home/pretrain."""

    root: Path

    @property
    def corpus(self) -> Path:
        return self.root / "corpus"

    @property
    def tokenizer(self) -> Path:
        """The tokenizer trained on the cleaned corpus (a Hugging Face directory)."""
        return self.root / "tokenizer"

    def tokens(self, tokenizer_dir: Path) -> Path:
        """Token shards live by tokenizer, so shards of two vocabularies never mix."""
        return self.root / "tokens" / file_hash(tokenizer_dir / "tokenizer.json")[:12]

    def run(self, name: str) -> Path:
        return self.root / "runs" / name

    def shards(self) -> list[Path]:
        found = sorted(self.corpus.glob("*.jsonl"))
        if not found:
            raise CorpusError(f"no cleaned corpus in {self.corpus}: run `mlstack pretrain prepare` first")
        return found
