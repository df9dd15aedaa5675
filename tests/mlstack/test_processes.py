"""A child service dies with its parent, however the parent ends; owner stamps tell the dead."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlstack import processes
from mlstack.deploy import stack
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


# A service that answers /health on the port it is given, once it has slept `delay` seconds.
HEALTH_SERVER = """
import http.server, sys, time
time.sleep(float(sys.argv[2]))
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"true")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def test_a_service_is_ready_only_when_it_is_the_one_listening_on_its_port(tmp_path: Path) -> None:
    """Another program's server on the port answers the health check: that is not this service
    being ready (its own start then fails to bind, and the other server may go at any time)."""
    port = processes.free_port()
    other = subprocess.Popen([sys.executable, "-c", HEALTH_SERVER, str(port), "0"])
    try:
        health = f"http://127.0.0.1:{port}/health"
        assert stack.answers_within(lambda: processes.answers(health), 30)
        assert processes.listens(other.pid, port) and not processes.listens(other.pid, processes.free_port())
        slow = [sys.executable, "-c", HEALTH_SERVER, str(port), "60"]  # still starting throughout
        with pytest.raises(processes.ServiceFailed, match="did not answer within 3 s"):
            processes.start_service(
                slow, tmp_path / "slow.log", ready=lambda: processes.answers(health), timeout_s=3, what="x",
                port=port,
            )  # fmt: skip
    finally:
        other.kill()
        other.wait()
    own = processes.free_port()
    argv = [sys.executable, "-c", HEALTH_SERVER, str(own), "0"]
    started = processes.start_service(
        argv, tmp_path / "own.log", ready=lambda: processes.answers(f"http://127.0.0.1:{own}/health"),
        timeout_s=60, what="own", port=own,
    )  # fmt: skip
    assert processes.listens(started.pid, own)
    processes.stop(started)


def test_owner_stamps_tell_a_dead_writer_from_a_live_one() -> None:
    assert processes.owner_alive(processes.owner())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = processes.owner().split(":")[0]
    assert not processes.owner_alive(f"{host}:{dead.pid}:{int(time.time())}")
    assert not processes.owner_alive(f"{host}:1:0"), "a reused pid started at another time"
    assert processes.owner_alive("another-host:1:0"), "another host's writer is never judged dead"
