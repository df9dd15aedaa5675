"""A child service dies with its parent, however the parent ends; owner stamps tell the dead."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlstack import processes
from tests.kill import alive, kill_when

# A parent that starts a service (a sleeping Python) from a worker thread that then ends, the
# case where a naive PR_SET_PDEATHSIG would fire early, and then works on.
PARENT = """
import sys, threading, time
from pathlib import Path
from mlstack import processes

services = []

def start():
    services.append(processes.start_service(
        [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"],
        Path(sys.argv[1]), ready=lambda: "up" in Path(sys.argv[1]).read_text(), timeout_s=60, what="sleeper",
    ))

worker = threading.Thread(target=start)
worker.start()
worker.join()
print("started", services[0].pid, flush=True)
time.sleep(600 if sys.argv[2] == "work" else 0)
"""


def test_a_sigkilled_parent_takes_its_service_with_it(tmp_path: Path) -> None:
    log = tmp_path / "parent.log"
    env = {"MLSTACK_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path.cwd())}
    argv = [sys.executable, "-c", PARENT, str(tmp_path / "service.log"), "work"]
    killed = kill_when(argv, env, when=lambda: log.is_file() and "started" in log.read_text(), log=log)
    assert len(killed.started("time.sleep(600)")) == 1, killed.output
    assert killed.survivors() == []


def test_a_parent_that_exits_stops_its_service(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-c", PARENT, str(tmp_path / "service.log"), "exit"], capture_output=True, text=True
    )
    assert finished.returncode == 0, finished.stderr
    # This parent's own service, by the pid it printed: never another test's or another user's.
    service = int(finished.stdout.split("started")[1].split()[0])
    deadline = time.monotonic() + 30
    while alive(service) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(service), f"the service {service} outlived its parent"


def test_a_service_that_never_comes_up_is_stopped_with_its_log(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('bad config'); sys.exit(3)"]
    with pytest.raises(processes.ServiceFailed) as failed:
        processes.start_service(argv, tmp_path / "x.log", ready=lambda: False, timeout_s=30, what="x")
    assert str(failed.value).startswith("x exited with code 3. Its log")
    assert str(failed.value).endswith("bad config")


def test_owner_stamps_tell_a_dead_writer_from_a_live_one() -> None:
    assert processes.owner_alive(processes.owner())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = processes.owner().split(":")[0]
    assert not processes.owner_alive(f"{host}:{dead.pid}:{int(time.time())}")
    assert not processes.owner_alive(f"{host}:1:0"), "a reused pid started at another time"
    assert processes.owner_alive("another-host:1:0"), "another host's writer is never judged dead"
