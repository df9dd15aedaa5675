"""Deliveries signed as GitHub and Slack sign them, computed here from a test secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

GITHUB_SECRET = "gh-webhook-canary-7f3a9c"
SLACK_SECRET = "slack-signing-canary-41be0d"


def github_issue(repository: str, number: int, action: str = "opened") -> dict[str, Any]:
    """An `issues` payload in GitHub's shape (the fields a receiver reads, and text it must not pass on)."""
    return {
        "action": action,
        "issue": {
            "number": number,
            "title": "a title never sent on",
            "body": "private text",
            "user": {"login": "ana"},
        },
        "repository": {"full_name": repository, "private": False},
        "sender": {"login": "ana"},
    }


def github_comment(repository: str, number: int, comment: int, action: str = "created") -> dict[str, Any]:
    return {**github_issue(repository, number, action), "comment": {"id": comment, "body": "private comment"}}


def github_headers(
    body: bytes, event: str = "issues", delivery: str | None = None, secret: str = GITHUB_SECRET
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        "User-Agent": "GitHub-Hookshot/test",
    }


def slack_message(
    channel: str, ts: str, thread_ts: str | None = None, event_id: str | None = None
) -> dict[str, Any]:
    """An Events API `event_callback` with a message event, as Slack documents it."""
    event: dict[str, Any] = {"type": "message", "channel": channel, "user": "U1", "text": "private", "ts": ts}
    if thread_ts:
        event["thread_ts"] = thread_ts
    return {
        "token": "deprecated-verification-token",
        "team_id": "T1",
        "api_app_id": "A1",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
        "event_time": int(time.time()),
    }


def slack_headers(
    body: bytes, secret: str = SLACK_SECRET, timestamp: int | None = None, retry: int | None = None
) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={signature}",
    }
    if retry is not None:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    return headers


def dumps(payload: Any) -> bytes:
    return json.dumps(payload).encode()
