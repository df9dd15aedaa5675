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


def _count(trace: Path, line: str) -> int:
    return trace.read_text().count(line) if trace.is_file() else 0


def _add_one_traced(folder: Path, trace: Path) -> None:
    """_add_one, with filelock's debug records of each attempt written to `trace`."""
    import logging

    handler = logging.FileHandler(trace)
    logger = logging.getLogger("filelock")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    _add_one(folder, 1)


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

    trace = tmp_path / "waiter.log"
    waiter = context.Process(target=_add_one_traced, args=(tmp_path, trace))
    with locks.file_lock(tmp_path):
        waiter.start()
        # filelock's own record that the waiter tried this lock and was refused, twice: it is
        # blocked in the lock and still waiting, not merely slow to get there or given up.
        refused = f"not acquired on {locks.lock_path(tmp_path)}"
        deadline = time.monotonic() + 30
        while _count(trace, refused) < 2 and time.monotonic() < deadline:
            assert waiter.is_alive(), "the waiter ended while the lock was held"
            time.sleep(0.05)
        assert _count(trace, refused) >= 2, trace.read_text() if trace.is_file() else "no attempt logged"
        assert not (tmp_path / "counter").exists(), "it wrote while another process held the lock"
    waiter.join(30)
    assert waiter.exitcode == 0 and (tmp_path / "counter").read_text() == "1"

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
