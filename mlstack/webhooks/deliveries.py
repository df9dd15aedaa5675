"""What a delivery is once verified: its signature checked against the configured secret, in
constant time, and its payload read down to the ids of what it touched.

GitHub signs the raw body with HMAC-SHA256 (`X-Hub-Signature-256: sha256=HEX`); Slack signs
`v0:TIMESTAMP:BODY` the same way (`X-Slack-Signature: v0=HEX`) and a timestamp too far from now
is a replay. Both are checked before the body is parsed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

GITHUB_EVENTS = ("issues", "issue_comment")
GITHUB_EVENT = "mlstack.github.issue.updated"
SLACK_EVENT = "mlstack.slack.message.posted"
# The resource label a burst of events is coalesced by (prefect.yaml's trigger `for_each`).
SOURCE_LABEL = "mlstack.source"

_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_SLACK_ID = re.compile(r"^[A-Z0-9]{2,32}$")
_SLACK_TS = re.compile(r"^\d{1,12}\.\d{1,8}$")
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


class Refused(Exception):
    """A delivery answered with an error status and not recorded."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Delivery:
    """One accepted delivery: the RAG source and document it touched, and its Prefect event."""

    id: str  # "github:DELIVERY_GUID" or "slack:EVENT_ID": what a redelivery repeats
    source: str  # the RAG source: "github:owner/repo", "slack:CHANNEL_ID"
    document: str  # the RAG document id: "github:owner/repo#12", "slack:CHANNEL_ID:THREAD_TS"
    event: str
    action: str
    resource: dict[str, str] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)  # ids only: never text, never a token

    @property
    def event_id(self) -> str:
        """The same for a redelivery, so Prefect too would see one event."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mlstack-webhook:{self.id}"))


def _hex_hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_github(secret: str, body: bytes, signature: str | None) -> None:
    if not signature:
        raise Refused(401, "no X-Hub-Signature-256 header: the webhook needs its secret set on GitHub")
    expected = f"sha256={_hex_hmac(secret, body)}"
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise Refused(401, "X-Hub-Signature-256 does not match the body and the configured secret")


def verify_slack(
    secret: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    max_age_s: float,
    now: float | None = None,
) -> None:
    if not timestamp or not signature:
        raise Refused(401, "no X-Slack-Request-Timestamp or X-Slack-Signature header")
    try:
        sent = int(timestamp)
    except ValueError:
        raise Refused(401, "X-Slack-Request-Timestamp is not a number") from None
    if abs((now if now is not None else time.time()) - sent) > max_age_s:
        raise Refused(401, f"X-Slack-Request-Timestamp is more than {max_age_s:.0f} s from now: a replay")
    expected = f"v0={_hex_hmac(secret, b'v0:' + timestamp.encode() + b':' + body)}"
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise Refused(401, "X-Slack-Signature does not match the body and the configured signing secret")


def _json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Refused(400, f"the body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise Refused(400, "the body is not a JSON object")
    return payload


def _field(payload: dict[str, Any], path: str, pattern: re.Pattern[str] | None = None) -> Any:
    """payload["a"]["b"] for "a.b", or a 400 that names the field and its rule."""
    value: Any = payload
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if value is None:
        raise Refused(400, f"{path}: missing")
    if pattern is not None and not (isinstance(value, str) and pattern.fullmatch(value)):
        raise Refused(400, f"{path}: does not match {pattern.pattern}")
    return value


def github(event: str | None, delivery: str | None, body: bytes) -> Delivery | str:
    """The delivery, or why it is not one this receiver acts on (ping, another event)."""
    if not event:
        raise Refused(400, "no X-GitHub-Event header")
    if not delivery or not _DELIVERY_ID.fullmatch(delivery):
        raise Refused(400, "no X-GitHub-Delivery header, or not a delivery id")
    payload = _json(body)
    if event == "ping":
        return "ping"
    if event not in GITHUB_EVENTS:
        return f"GitHub event {event!r}: only {', '.join(GITHUB_EVENTS)} are acted on"
    repository = _field(payload, "repository.full_name", _REPOSITORY)
    number = _field(payload, "issue.number")
    if not isinstance(number, int) or isinstance(number, bool) or not 0 < number < 2**53:
        raise Refused(400, "issue.number: not a positive integer")
    action = str(payload.get("action") or "updated")[:40]
    source = f"github:{repository}"
    ids: dict[str, Any] = {"repository": repository, "number": number}
    if event == "issue_comment":
        comment = _field(payload, "comment.id")
        ids["comment"] = comment if isinstance(comment, int) else None
    return Delivery(
        id=f"github:{delivery}",
        source=source,
        document=f"github:{repository}#{number}",
        event=GITHUB_EVENT,
        action=f"{event}.{action}",
        resource={
            "prefect.resource.id": f"mlstack.github.issue.{repository}#{number}",
            SOURCE_LABEL: source,
        },
        payload={"source": source, **ids, "github_event": event, "action": action, "delivery": delivery},
    )


def slack(body: bytes) -> Delivery | dict[str, str] | str:
    """The delivery; the answer to Slack's url_verification; or why it is not acted on."""
    payload = _json(body)
    kind = payload.get("type")
    if kind == "url_verification":
        return {"challenge": str(_field(payload, "challenge"))}
    if kind != "event_callback":
        return f"Slack request type {kind!r}: only event_callback is acted on"
    event_id = _field(payload, "event_id", _DELIVERY_ID)
    event = payload.get("event")
    if not isinstance(event, dict) or event.get("type") != "message":
        inner = event.get("type") if isinstance(event, dict) else None
        return f"Slack event {inner!r}: only message events are acted on"
    subtype = event.get("subtype")
    # An edit or a deletion names its message inside; the thread is the parent's ts.
    message = event.get("message") if subtype == "message_changed" else event
    if subtype == "message_deleted":
        message = event.get("previous_message")
    if not isinstance(message, dict):
        raise Refused(
            400, f"event.{'previous_message' if subtype == 'message_deleted' else 'message'}: missing"
        )
    channel = _field(event, "channel", _SLACK_ID)
    thread = message.get("thread_ts") or message.get("ts")
    if not (isinstance(thread, str) and _SLACK_TS.fullmatch(thread)):
        raise Refused(400, f"event message thread_ts or ts: does not match {_SLACK_TS.pattern}")
    source = f"slack:{channel}"
    action = str(subtype or "posted")[:40]
    return Delivery(
        id=f"slack:{event_id}",
        source=source,
        document=f"slack:{channel}:{thread}",
        event=SLACK_EVENT,
        action=f"message.{action}",
        resource={"prefect.resource.id": f"mlstack.slack.thread.{channel}.{thread}", SOURCE_LABEL: source},
        payload={
            "source": source,
            "channel": channel,
            "thread_ts": thread,
            "action": action,
            "event_id": event_id,
        },
    )
