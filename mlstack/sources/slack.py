"""Slack's Web API: one channel's history, thread replies and the workspace's users, with cursor
pagination and rate limits waited out (`mlstack.sources.http`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mlstack.sources import Skipped, SourceError
from mlstack.sources import http as api
from mlstack.sources.records import Record, SlackMessage, SlackUser, kept


@dataclass
class ChannelHistory:
    name: str
    messages: list[dict[str, Any]]  # parents and replies, as the API gives them
    users: list[dict[str, Any]]
    skipped: list[Skipped] = field(default_factory=list)  # records not in Slack's documented shape


def _pager(
    settings: Any, http_client: Any, what: str, tolerated: frozenset[str] = frozenset()
) -> Callable[[str, dict[str, Any]], Iterable[dict[str, Any]]]:
    """A reader of a Web API method's pages (cursor pagination, rate limits waited out). An error
    in `tolerated` is yielded as the last page instead of raised."""
    token = settings.sources.slack_token
    if token is None:
        raise SourceError(f"{what} reads the Slack Web API: set MLSTACK_SOURCES_SLACK_TOKEN (a bot token)")
    root = settings.sources.slack_api_url.rstrip("/")
    wait = settings.sources.rate_limit_wait_s
    http = api.client(http_client, {"Authorization": f"Bearer {token.get_secret_value()}"})

    def pages(method: str, params: dict[str, Any]) -> Iterable[dict[str, Any]]:
        page_cursor = None
        while True:
            body = api.get(
                http, f"{root}/{method}", {**params, "cursor": page_cursor} if page_cursor else params, wait
            ).json()
            if not body.get("ok"):
                if body.get("error") in tolerated:
                    yield body
                    return
                raise SourceError(
                    f"Slack {method} failed: {body.get('error')}."
                    " Check the token's scopes and the channel id."
                )
            yield body
            page_cursor = (body.get("response_metadata") or {}).get("next_cursor")
            if not page_cursor:
                return

    return pages


def channel_history(
    channel_id: str, settings: Any, cursor: str | None = None, http_client: Any = None, source: str = ""
) -> ChannelHistory:
    """conversations.history (and .replies for threads) of one channel since `cursor` (a ts),
    with users.list and conversations.info; raises `http.RateLimited` past the settings' wait."""
    pages = _pager(settings, http_client, f"--source {source or 'slack:' + channel_id}")

    skipped: list[Skipped] = []

    def valid(method: str, body: dict[str, Any], key: str, model: type[Record]) -> list[dict[str, Any]]:
        records = body.get(key)
        if not isinstance(records, list):
            raise SourceError(f"Slack {method} answered no list of {key}")
        where = f"{source or 'slack:' + channel_id} {method} {key}"
        return kept(model, records, lambda index: f"{where}[{index}]", skipped)

    users = [
        u
        for body in pages("users.list", {"limit": 200})
        for u in valid("users.list", body, "members", SlackUser)
    ]
    info = next(iter(pages("conversations.info", {"channel": channel_id}))).get("channel")
    name = info.get("name") if isinstance(info, dict) else None
    messages: list[dict[str, Any]] = []
    params = {"channel": channel_id, "limit": 200, **({"oldest": cursor} if cursor else {})}
    for body in pages("conversations.history", params):
        for message in valid("conversations.history", body, "messages", SlackMessage):
            messages.append(message)
            if message.get("reply_count"):
                replies = pages("conversations.replies", {"channel": channel_id, "ts": message["ts"]})
                messages.extend(
                    r
                    for b in replies
                    for r in valid("conversations.replies", b, "messages", SlackMessage)
                    if r["ts"] != message["ts"]
                )
    return ChannelHistory(name if isinstance(name, str) else channel_id, messages, users, skipped)


@dataclass
class Thread:
    channel: str  # the channel's name
    messages: list[dict[str, Any]]  # the parent and its replies; empty when the thread is gone
    users: list[dict[str, Any]]


def thread(channel_id: str, thread_ts: str, settings: Any, http_client: Any = None) -> Thread:
    """One thread as Slack has it now (conversations.replies, every page), with the names to show
    it by; no messages when Slack says the thread is gone."""
    pages = _pager(settings, http_client, f"refreshing Slack thread {channel_id}:{thread_ts}", THREAD_GONE)
    replies = list(pages("conversations.replies", {"channel": channel_id, "ts": thread_ts, "limit": 200}))
    if not replies[-1].get("ok"):
        return Thread(channel_id, [], [])
    where = f"{channel_id}:{thread_ts}"
    messages = [
        m for b in replies for m in kept(SlackMessage, b.get("messages"), lambda i: f"{where}[{i}]", [])
    ]
    users = [
        u
        for b in pages("users.list", {"limit": 200})
        for u in kept(SlackUser, b.get("members"), lambda i: f"users.list[{i}]", [])
    ]
    info = next(iter(pages("conversations.info", {"channel": channel_id}))).get("channel")
    name = info.get("name") if isinstance(info, dict) else None
    return Thread(name if isinstance(name, str) else channel_id, messages, users)


# What conversations.replies answers for a thread whose parent was deleted, or never was.
THREAD_GONE = frozenset({"thread_not_found", "message_not_found"})
