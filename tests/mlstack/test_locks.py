"""Writers in separate processes take turns; a killed holder frees the lock."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from mlstack import locks
from mlstack.errors import Busy


def _add_one(folder: Path, times: int) -> None:
    """A read-modify-write that loses updates without the lock (the sleep widens the window)."""
    for _ in range(times):
        with locks.file_lock(folder):
            counter = folder / "counter"
            value = int(counter.read_text()) if counter.exists() else 0
            time.sleep(0.005)
            counter.write_text(str(value + 1))


@pytest.mark.parametrize("writers", [2, 4])
def test_concurrent_writers_lose_no_update(tmp_path: Path, writers: int) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_add_one, args=(tmp_path, 20)) for _ in range(writers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0
    assert int((tmp_path / "counter").read_text()) == 20 * writers
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter"], "the lock lives beside the folder"


def _hold_then_die(folder: Path) -> None:
    with locks.file_lock(folder):
        (folder / "holding").touch()
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_holder_frees_the_lock_and_a_busy_one_says_so(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    holder = context.Process(target=_hold_then_die, args=(tmp_path,))
    holder.start()
    holder.join(60)
    assert holder.exitcode == -signal.SIGKILL and (tmp_path / "holding").exists()
    with locks.file_lock(tmp_path, timeout_s=5):  # not held by the dead
        pass

    sleeper = context.Process(target=_add_one, args=(tmp_path, 1))
    with locks.file_lock(tmp_path):
        sleeper.start()
        time.sleep(1)
        assert sleeper.is_alive(), "it waits for the lock"
    sleeper.join(30)
    assert sleeper.exitcode == 0

    def busy_elsewhere() -> None:
        with locks.file_lock(tmp_path, timeout_s=0.2):
            pass

    blocker = context.Process(target=_hold_for, args=(tmp_path, 3.0))
    blocker.start()
    deadline = time.monotonic() + 30
    while not (tmp_path / "held").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(Busy, match="being written by another run"):
        busy_elsewhere()
    blocker.join(30)


def _hold_for(folder: Path, seconds: float) -> None:
    with locks.file_lock(folder):
        (folder / "held").touch()
        time.sleep(seconds)
