"""Slack: a workspace export directory, or the Web API for one channel.

The export is Slack's own: `channels.json`, `users.json`, and a folder per channel holding one
JSON file per day. A thread (a parent and its replies, tied by `thread_ts`, across day files) is
one document; user ids resolve to names; join and leave messages are dropped; bot messages keep
the bot's name; a `message_changed` event replaces the text (the latest wins) and
`message_deleted` removes a message; shared files are named with their permalink. A truncated or
invalid day file is skipped and reported, and the rest is read.
"""

from __future__ import annotations

import html
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlstack.rag.sources import Document, Skipped, SourceRead
from mlstack.sources import http as api
from mlstack.sources import slack as slack_api
from mlstack.sources.records import SlackChannel, SlackMessage, SlackUser, kept

DROPPED = {"channel_join", "channel_leave", "group_join", "group_leave"}
_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|([^>]+))?>")
_CHANNEL = re.compile(r"<#([A-Z0-9]+)(?:\|([^>]*))?>")
_LINK = re.compile(r"<((?:https?|mailto):[^>|]+)(?:\|([^>]+))?>")


def permalink(channel_id: str, ts: str) -> str:
    return f"https://slack.com/archives/{channel_id}/p{ts.replace('.', '')}"


def _when(ts: str) -> datetime:
    return datetime.fromtimestamp(float(ts), UTC)


def user_names(users: Iterable[dict[str, Any]]) -> dict[str, str]:
    names = {}
    for user in users:
        profile = user.get("profile") or {}
        name = profile.get("display_name") or user.get("real_name") or profile.get("real_name")
        names[user["id"]] = name or user.get("name") or user["id"]
    return names


def clean(text: str, users: dict[str, str], channels: dict[str, str]) -> str:
    """Slack's markup as people read it."""
    text = _MENTION.sub(lambda m: "@" + users.get(m.group(1), m.group(2) or m.group(1)), text)
    text = _CHANNEL.sub(lambda m: "#" + (m.group(2) or channels.get(m.group(1), m.group(1))), text)
    text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})" if m.group(2) else m.group(1), text)
    return html.unescape(text)


def _author(message: dict[str, Any], users: dict[str, str]) -> str:
    if message.get("subtype") == "bot_message" or (message.get("bot_id") and not message.get("user")):
        profile = message.get("bot_profile") or {}
        return message.get("username") or profile.get("name") or message.get("bot_id") or "bot"
    user = message.get("user")
    return users.get(user, user or "unknown")


def _message_text(message: dict[str, Any], users: dict[str, str], channels: dict[str, str]) -> str:
    text = clean(message.get("text") or "", users, channels)
    for shared in message.get("files") or []:
        name = shared.get("title") or shared.get("name") or "a file"
        link = shared.get("permalink") or shared.get("url_private") or ""
        text += f"\n[shared file: {name}{f' {link}' if link else ''}]"
    return text.strip()


def apply_events(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as they stand now: edits applied (the latest wins), deletions and joins gone."""
    by_ts: dict[str, dict[str, Any]] = {}
    for message in sorted(messages, key=lambda m: float(m.get("ts") or 0)):
        subtype = message.get("subtype")
        if subtype in DROPPED:
            continue
        if subtype == "message_changed" and isinstance(message.get("message"), dict):
            changed = message["message"]
            if changed.get("ts") in by_ts:
                by_ts[changed["ts"]] = {**by_ts[changed["ts"]], **changed}
            continue
        if subtype == "message_deleted":
            by_ts.pop(message.get("deleted_ts") or "", None)
            continue
        by_ts[message["ts"]] = message
    return list(by_ts.values())


def threads(
    messages: list[dict[str, Any]],
    channel_id: str,
    channel: str,
    users: dict[str, str],
    channels: dict[str, str],
) -> list[Document]:
    """One document per thread: the parent and its replies in order."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in apply_events(messages):
        grouped[message.get("thread_ts") or message["ts"]].append(message)
    documents = []
    for thread_ts, thread in grouped.items():
        thread.sort(key=lambda m: float(m["ts"]))
        units = []
        for message in thread:
            text = _message_text(message, users, channels)
            if text:
                when = _when(message["ts"]).strftime("%Y-%m-%d %H:%M")
                units.append(f"{_author(message, users)} ({when}): {text}")
        if not units:
            continue
        parent = thread[0]
        # A parent may be a file with no text, or deleted with its replies left: fall back.
        first_line = (_message_text(parent, users, channels).splitlines() or [units[0]])[0]
        edits = [float(m["edited"]["ts"]) for m in thread if isinstance(m.get("edited"), dict)]
        latest = max([float(m["ts"]) for m in thread] + edits)
        documents.append(
            Document(
                id=f"slack:{channel_id}:{thread_ts}",
                kind="slack",
                title=f"#{channel}: {first_line[:100]}",
                units=tuple(units),
                url=permalink(channel_id, thread_ts),
                author=_author(parent, users),
                created_at=_when(thread_ts),
                updated_at=datetime.fromtimestamp(latest, UTC),
                metadata={"channel": channel, "replies": len(thread) - 1},
            )
        )
    return documents


def _load(path: Path, result: SourceRead, expect: type) -> Any:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        result.skipped.append(Skipped(str(path), f"unreadable JSON ({exc})"))
        return None
    if not isinstance(data, expect):
        result.skipped.append(Skipped(str(path), f"expected a JSON {expect.__name__}"))
        return None
    return data


def _record(path: Path) -> Callable[[int], str]:
    return lambda index: f"{path} record {index}"


def read_export(folder: Path, source: str) -> SourceRead:
    result = SourceRead(source)
    channel_list = _load(folder / "channels.json", result, list)
    if channel_list is None:
        result.complete = False  # without the channel list nothing can be told deleted
        return result
    users_file = folder / "users.json"
    users = user_names(kept(SlackUser, _load(users_file, result, list), _record(users_file), result.skipped))
    listed = kept(SlackChannel, channel_list, _record(folder / "channels.json"), result.skipped)
    channels = {c["id"]: c["name"] for c in listed}
    for channel_id, channel in channels.items():
        messages = []
        for day in sorted((folder / channel).glob("*.json")):
            messages += kept(SlackMessage, _load(day, result, list), _record(day), result.skipped)
        result.documents.extend(threads(messages, channel_id, channel, users, channels))
    return result


def read_api(
    channel_id: str, source: str, settings: Any, cursor: str | None = None, http_client: Any = None
) -> SourceRead:
    """One channel's threads since `cursor` (a ts), read by `mlstack.sources.slack`.
    Incremental: it deletes nothing."""
    result = SourceRead(source, complete=False, cursor=cursor)
    try:
        channel = slack_api.channel_history(channel_id, settings, cursor, http_client, source)
    except api.RateLimited as exc:
        result.stopped = str(exc)
        return result  # nothing of this read is kept: the cursor stays where it was
    result.skipped = channel.skipped
    users = user_names(channel.users)
    result.documents = threads(channel.messages, channel_id, channel.name, users, {})
    if channel.messages:
        result.cursor = max((m["ts"] for m in channel.messages), key=float)
    return result
