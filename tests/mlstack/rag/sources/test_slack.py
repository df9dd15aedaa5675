"""Slack: the real export format, threads, names, joins, bots, edits, files, broken day files,
and the Web API with cursor pagination and Retry-After."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mlstack.rag.sources import slack
from mlstack.settings import get_settings
from tests.mlstack.rag.conftest import day
from tests.mlstack.sources.fakes import FakeSlack


def test_the_shipped_export_reads_into_threads(slack_export: Path) -> None:
    read = slack.read_export(slack_export, "slack:x")
    by_id = {d.id: d for d in read.documents}
    thread = by_id["slack:C0MLS0001:1789380060.000200"]
    assert len(thread.units) == 3  # the parent and both replies, in order
    assert thread.units[1].startswith("ana (")
    assert "@ana" in thread.units[2]  # <@U0MLS0001> resolved
    assert thread.url == "https://slack.com/archives/C0MLS0001/p1789380060000200"
    assert thread.title.startswith("#general: How do I see the Prefect UI")
    assert not any("has joined" in u or "has left" in u for d in read.documents for u in d.units)
    edited = by_id["slack:C0MLS0001:1789383600.000500"]
    assert "Postgres 18 with pgvector" in edited.text  # the message_changed event's text won
    assert "nothing else changes" in edited.text and len(edited.units) == 1
    bot = by_id["slack:C0MLS0002:1789462800.000100"]
    assert bot.author == "drift-alerts" and bot.units[0].startswith("drift-alerts (")
    shared = by_id["slack:C0MLS0001:1789466400.000100"]
    assert "[shared file: Drift report 2026-09-14 https://example.slack.com/files/" in shared.text
    assert not read.skipped and read.complete


def test_a_truncated_day_file_is_skipped_and_the_rest_read(slack_export: Path) -> None:
    (slack_export / "general" / "2026-09-16.json").write_text('[{"type": "message", "text": "cut of')
    day(slack_export, "general", "2026-09-17", [{"type": "message", "user": "U0MLS0001", "text": "no ts"}])
    read = slack.read_export(slack_export, "slack:x")
    where = [s.where for s in read.skipped]
    assert any(w.endswith("general/2026-09-16.json") for w in where)
    assert any(w.endswith("general/2026-09-17.json record 0") for w in where)
    assert len(read.documents) == 6  # everything else still read


def test_deleted_messages_and_replies_in_later_day_files(slack_export: Path) -> None:
    day(
        slack_export,
        "general",
        "2026-09-18",
        [
            {
                "type": "message",
                "user": "U0MLS0002",
                "text": "late reply",
                "ts": "1789720000.000100",
                "thread_ts": "1789380060.000200",
            },
            {
                "type": "message",
                "subtype": "message_deleted",
                "deleted_ts": "1789466400.000100",
                "ts": "1789720001.000100",
            },
        ],
    )
    by_id = {d.id: d for d in slack.read_export(slack_export, "slack:x").documents}
    assert by_id["slack:C0MLS0001:1789380060.000200"].units[-1].startswith("Kofi Mensah (")
    assert "slack:C0MLS0001:1789466400.000100" not in by_id


@pytest.fixture
def slack_settings(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MLSTACK_SOURCES_SLACK_TOKEN", "xoxb-test")
    monkeypatch.setenv("MLSTACK_SOURCES_RATE_LIMIT_WAIT_S", "1")
    return get_settings()


def test_the_web_api_follows_cursors_and_threads(slack_settings) -> None:
    fake = FakeSlack()
    read = slack.read_api(
        "C1", "slack:C1", slack_settings, None, httpx.Client(transport=httpx.MockTransport(fake))
    )
    assert fake.calls.count("conversations.history") == 2
    by_id = {d.id: d for d in read.documents}
    assert by_id["slack:C1:200.1"].units[1].startswith("ana (") and "answer" in by_id["slack:C1:200.1"].text
    assert read.cursor == "201.1" and not read.complete


def test_the_web_api_waits_out_a_short_retry_after_and_stops_on_a_long_one(slack_settings) -> None:
    fake = FakeSlack(limited=1, retry_after="0")
    client = httpx.Client(transport=httpx.MockTransport(fake))
    assert len(slack.read_api("C1", "slack:C1", slack_settings, None, client).documents) == 2
    stopped = slack.read_api(
        "C1",
        "slack:C1",
        slack_settings,
        "150.0",
        httpx.Client(transport=httpx.MockTransport(FakeSlack(5, "900"))),
    )
    assert stopped.documents == [] and stopped.cursor == "150.0"  # the next run starts where this one did
    assert "rate limited for 900s" in (stopped.stopped or "")


def test_the_web_api_needs_a_token() -> None:
    from mlstack.sources import SourceError

    with pytest.raises(SourceError, match="MLSTACK_SOURCES_SLACK_TOKEN"):
        slack.read_api("C1", "slack:C1", get_settings(), None, None)
