"""The Slack client: a channel's history with thread replies and users, through cursor pages."""

from __future__ import annotations

import httpx
import pytest

from mlstack.settings import get_settings
from mlstack.sources import SourceError, slack
from tests.mlstack.sources.fakes import FakeSlack


def test_a_channel_comes_with_its_replies_users_and_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_SOURCES_SLACK_TOKEN", "xoxb-test")
    fake = FakeSlack()
    channel = slack.channel_history(
        "C1", get_settings(), None, httpx.Client(transport=httpx.MockTransport(fake))
    )
    assert channel.name == "help" and [u["id"] for u in channel.users] == ["U1"]
    assert [m["ts"] for m in channel.messages] == ["100.1", "200.1", "201.1"]  # the parent's reply once
    assert fake.calls.count("conversations.history") == 2 and fake.calls.count("conversations.replies") == 1


def test_an_older_token_name_still_reaches_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    channel = slack.channel_history(
        "C1", get_settings(), None, httpx.Client(transport=httpx.MockTransport(FakeSlack()))
    )
    assert channel.messages


def test_no_token_says_which_variable_to_set() -> None:
    with pytest.raises(SourceError, match="set MLSTACK_SOURCES_SLACK_TOKEN"):
        slack.channel_history("C1", get_settings())
