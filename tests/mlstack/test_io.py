"""Atomic writes: files the umask lets others read, and nothing a killed writer leaves lingers."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mlstack.io import atomic_dir, staged_dir, sweep, write_parquet
from mlstack.processes import owner


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_files_follow_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "x.parquet")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "x.parquet").stat().st_mode) == mode


# Killed (by itself, with SIGKILL) in the middle of a staged write and of an atomic file.
KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from mlstack.io import atomic_file, staged_dir
folder = Path(sys.argv[1])
with staged_dir(folder) as staging, atomic_file(folder / "report.json") as tmp:
    (staging / "table.parquet").write_text("half")
    tmp.write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_writer_changes_nothing_and_its_leftovers_are_swept(tmp_path: Path) -> None:
    (tmp_path / "table.parquet").write_text("whole")
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], env={**os.environ})
    assert killed.returncode == -9
    assert (tmp_path / "table.parquet").read_text() == "whole"
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert len(leftovers) == 2, "a staging folder and a temporary file"

    live = tmp_path / f".staging~{owner()}~feedbeef"  # a writer still at work: not ours to remove
    elsewhere = tmp_path / ".staging~another-host:1:1~feedbeef"  # another host's: cannot tell
    live.mkdir()
    elsewhere.mkdir()
    with staged_dir(tmp_path) as staging:
        (staging / "table.parquet").write_text("new")
    assert (tmp_path / "table.parquet").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, elsewhere.name, "table.parquet"])
    assert sweep(tmp_path) == []


def test_a_plain_atomic_write_also_sweeps_what_killed_writers_left(tmp_path: Path) -> None:
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], env={**os.environ})
    assert killed.returncode == -9
    write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "other.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.parquet"]


KILLED_MODEL_WRITER = """
import os, signal, sys
from pathlib import Path
from mlstack.io import atomic_dir
with atomic_dir(Path(sys.argv[1]) / "model") as tmp:
    (tmp / "config.json").write_text("{}")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_model_folder_is_swapped_in_whole_or_not_at_all(tmp_path: Path) -> None:
    model = tmp_path / "model"
    with atomic_dir(model) as tmp:
        (tmp / "weights").write_text("v1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    with pytest.raises(RuntimeError), atomic_dir(model) as tmp:
        (tmp / "weights").write_text("half")
        raise RuntimeError("the save failed")
    assert (model / "weights").read_text() == "v1" and sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    with atomic_dir(model) as tmp:
        (tmp / "weights").write_text("v2")
    assert [p.name for p in model.iterdir()] == ["weights"] and (model / "weights").read_text() == "v2"
    with atomic_dir(model, replace=False) as tmp:  # another writer got there first: theirs stays
        (tmp / "weights").write_text("v3")
    assert (model / "weights").read_text() == "v2" and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_killed_model_writer_leaves_the_old_model_and_its_folder_is_swept(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights").write_text("v1")
    killed = subprocess.run([sys.executable, "-c", KILLED_MODEL_WRITER, str(tmp_path)], env={**os.environ})
    assert killed.returncode == -9
    assert (tmp_path / "model" / "weights").read_text() == "v1"
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(".model~")]) == 1
    with atomic_dir(tmp_path / "model") as tmp:
        (tmp / "weights").write_text("v2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
