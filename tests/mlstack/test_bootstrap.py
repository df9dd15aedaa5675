"""What importing mlstack.bootstrap (tests/conftest.py, first) does to Prefect: a flow run's
heartbeat thread stops as soon as the run ends."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from prefect import flow, flow_engine


class Engine:
    """What `_send_heartbeats` reads of a flow run engine; it records the heartbeats sent."""

    heartbeat_seconds = 30
    flow_run = None
    logger = logging.getLogger("test")

    def __init__(self) -> None:
        self.sent = threading.Semaphore(0)
        self.threads: list[threading.Thread] = []

    def _build_heartbeat_event_template(self) -> tuple[str, list[str]]:
        return "resource", ["related"]

    def _emit_flow_run_heartbeat(self, resource: object, related: object) -> None:
        assert (resource, related) == ("resource", ["related"])
        self.threads.append(threading.current_thread())
        self.sent.release()


class Stalled:
    """flow_engine's `time` for Prefect's own loop: its one-second sleeps never end, so only a
    thread woken by its stop signal can end."""

    def __init__(self) -> None:
        self.never = threading.Event()

    def sleep(self, seconds: float) -> None:
        self.never.wait(60)

    def __getattr__(self, name: str) -> object:  # the rest of the engine's time is the real one
        return getattr(time, name)


def test_a_runs_end_stops_its_heartbeat_thread_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    assert flow_engine._send_heartbeats.patched  # installed as prefect.flow_engine was imported
    stalled = Stalled()
    monkeypatch.setattr(flow_engine, "time", stalled)
    engine = Engine()
    try:
        with flow_engine._send_heartbeats(engine):  # as the sync engine calls it
            assert engine.sent.acquire(timeout=10)  # the first heartbeat goes out as the run starts
        (thread,) = set(engine.threads)
        # Prefect's loop would still be in a sleep, and the join would have given up after 2 s.
        assert not thread.is_alive()
        assert thread.daemon  # never holds a process open
        assert len(engine.threads) == 1  # nothing sent after the run
    finally:
        stalled.never.set()


def test_a_run_that_ended_on_its_own_sends_no_more_heartbeats() -> None:
    class Final:
        def is_final(self) -> bool:
            return True

    class Run:
        state = Final()

    engine = Engine()
    engine.flow_run = Run()  # type: ignore[assignment]
    with flow_engine._send_heartbeats(engine):
        pass
    assert engine.threads == []


@pytest.mark.slow
def test_a_flow_run_ends_with_its_heartbeat_thread_stopped(
    prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stalled = Stalled()
    monkeypatch.setattr(flow_engine, "time", stalled)
    beats: list[threading.Thread] = []
    sent = threading.Event()
    emit = flow_engine.FlowRunEngine._emit_flow_run_heartbeat

    def recorded(self: object, resource: object, related: object) -> None:
        beats.append(threading.current_thread())
        emit(self, resource, related)
        sent.set()

    monkeypatch.setattr(flow_engine.FlowRunEngine, "_emit_flow_run_heartbeat", recorded)

    @flow
    def beating() -> bool:
        return sent.wait(30)  # the run lasts until its first heartbeat has gone out

    try:
        assert beating()
        (thread,) = set(beats)
        assert not thread.is_alive()
    finally:
        stalled.never.set()
