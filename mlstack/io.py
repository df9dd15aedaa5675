"""Writes that never leave half a result behind: atomic files and atomically swapped folders.

Temporary names carry their writer's `mlstack.processes.owner()` stamp, so a later write into
the same folder removes what a killed writer left, and never what a live one is still writing.
Files are created the way `open()` creates them, so the umask decides who may read them (a
service that shares the data dir under another user, say), not `mkstemp`'s 0600.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlstack.processes import owner, owner_alive

STAGING = ".staging"
TEMP_SUFFIX = ".tmp"
# Between the parts of a temporary name: no host name, pid or our file names hold one.
SEP = "~"


def _temp_name(stem: str, suffix: str = "") -> str:
    return f"{stem}{SEP}{owner()}{SEP}{secrets.token_hex(4)}{suffix}"


def sweep(folder: Path) -> list[Path]:
    """Remove the staging folders and temporary files that dead writers left in `folder`."""
    removed = []
    for item in folder.iterdir() if folder.is_dir() else ():
        parts = item.name.split(SEP)
        ours = item.name.startswith(".") and len(parts) == 3
        if ours and (item.is_dir() or item.name.endswith(TEMP_SUFFIX)) and not owner_alive(parts[1]):
            shutil.rmtree(item, ignore_errors=True) if item.is_dir() else item.unlink(missing_ok=True)
            removed.append(item)
    return removed


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep(path.parent)
    tmp = path.parent / _temp_name(f".{path.name}", TEMP_SUFFIX)
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: Path, replace: bool = True) -> Iterator[Path]:
    """Yield an empty folder beside `path`; if the block succeeds it becomes `path`, whole: a
    model directory is never seen half written. What was at `path` is replaced, or with
    `replace` off kept (another writer got there first, and theirs is as good). A killed
    writer's folder is swept by the next write beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep(path.parent)
    tmp = path.parent / _temp_name(f".{path.name}", TEMP_SUFFIX)
    tmp.mkdir()
    try:
        yield tmp
        if not path.exists():
            try:
                os.replace(tmp, path)
            except OSError:  # a folder appeared there meanwhile: another writer's
                if replace:
                    raise
        elif replace:
            # A folder cannot replace a non-empty one in one rename: the old one steps aside first.
            old = path.parent / _temp_name(f".{path.name}", TEMP_SUFFIX)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def staged_dir(path: Path) -> Iterator[Path]:
    """Yield an empty staging folder; on success its files move into `path`, each atomically.

    All the slow work (computing, encoding, writing) happens before the first move, so a crash
    leaves `path` as it was. Other files already in `path` are left alone, except what killed
    writers left behind (see `sweep`).
    """
    path.mkdir(parents=True, exist_ok=True)
    sweep(path)
    staging = path / _temp_name(STAGING)
    staging.mkdir()
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


def file_hash(path: Path) -> str:
    """sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(data: Any, path: Path) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_text(text: str, path: Path) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def json_lines(text: str) -> list[str]:
    """The records of a JSON Lines text: split on `\\n` alone, as the format says (a `\\r` before it
    goes too). `str.splitlines` also breaks at U+2028, U+0085 and other characters that JSON
    writes raw inside a string, and so cut records in two."""
    return [line.removesuffix("\r") for line in text.split("\n")]
