"""Writes that never leave half a result behind: atomic files and atomically swapped folders."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextmanager
def staged_dir(path: Path) -> Iterator[Path]:
    """Yield an empty staging folder; on success its files move into `path`, each atomically.

    All the slow work (computing, encoding, writing) happens before the first move, so a crash
    leaves `path` as it was. Other files already in `path` are left alone.
    """
    path.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path, prefix=".staging-"))
    try:
        yield staging
        for item in sorted(staging.iterdir()):
            os.replace(item, path / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Deterministic bytes for equal frames: no index, fixed codec."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def write_json(data: Any, path: Path) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_text(text: str, path: Path) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)
