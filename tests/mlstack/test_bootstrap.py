"""What importing mlstack.bootstrap (tests/conftest.py, first) does to Prefect: the flow
engine's heartbeat fix."""

from __future__ import annotations

import logging
import threading

from prefect import flow_engine


class Engine:
    """What `_send_heartbeats` reads of a flow run engine. Its heartbeat waits until the run's end
    has been seen, or 1.5 s: less than the 2 s that an end which joins the thread waits."""

    heartbeat_seconds = 30
    flow_run = None
    logger = logging.getLogger("test")

    def __init__(self) -> None:
        self.emitting = threading.Event()
        self.ended = threading.Event()
        self.emitted = threading.Event()
        self.saw_end: list[bool] = []
        self.thread: threading.Thread | None = None

    def _build_heartbeat_event_template(self) -> tuple[None, None]:
        return None, None

    def _emit_flow_run_heartbeat(self, resource: object, related: object) -> None:
        self.thread = threading.current_thread()
        self.emitting.set()
        self.saw_end.append(self.ended.wait(1.5))
        self.emitted.set()


def test_a_flow_runs_end_does_not_wait_for_its_heartbeat_thread() -> None:
    assert flow_engine._send_heartbeats.patched  # installed when prefect.flow_engine was imported
    engine = Engine()
    with flow_engine._send_heartbeats(engine):  # as the sync engine calls it
        assert engine.emitting.wait(10)  # the first heartbeat goes out as the run starts
    engine.ended.set()
    assert engine.emitted.wait(10)
    # Joined, the end would have waited for the heartbeat until that gave up (1.5 s) without
    # seeing the end; not joined, the end came at once.
    assert engine.saw_end == [True]


def test_the_thread_stops_by_itself_and_sends_nothing_after_the_run() -> None:
    engine = Engine()
    engine.ended.set()
    with flow_engine._send_heartbeats(engine):
        assert engine.emitting.wait(10)
    assert engine.thread is not None and engine.thread.daemon  # never holds a process open
    engine.thread.join(5)
    assert not engine.thread.is_alive()
    assert engine.saw_end == [True]  # one heartbeat, as the run started: none once it ended
