"""Malformed records in Slack's and GitHub's own shapes: each one a field of the wrong type or
form, or a record that is not an object. Each case is (what is wrong, the field a reader should
name, the record); the good records around them must still be read."""

from __future__ import annotations

from typing import Any

GOOD_TS = "1789900000.000100"


def _message(**fields: Any) -> dict[str, Any]:
    return {"type": "message", "user": "U0MLS0001", "text": "a good message", "ts": GOOD_TS, **fields}


SLACK_MESSAGES: list[tuple[str, str, Any]] = [
    ("text a number", "text", _message(text=123)),
    ("text a list", "text", _message(text=["a"])),
    ("ts huge", "ts", _message(ts="1e300")),
    ("ts not a number", "ts", _message(ts="nan")),
    ("ts a number", "ts", _message(ts=1789900000.0001)),
    ("ts missing", "ts", {"type": "message", "user": "U0MLS0001", "text": "no ts"}),
    ("thread_ts a number", "thread_ts", _message(thread_ts=5)),
    ("thread_ts not a ts", "thread_ts", _message(thread_ts="yesterday")),
    ("user a name, not an id", "user", _message(user="bob")),
    ("user a number", "user", _message(user=42)),
    ("user an object", "user", _message(user={"id": "U0MLS0001"})),
    ("subtype a number", "subtype", _message(subtype=5)),
    ("files a string", "files", _message(files="report.pdf")),
    ("a file a number", "files", _message(files=[5])),
    ("a file's title a number", "files", _message(files=[{"title": 5, "permalink": "https://x"}])),
    ("edited a string", "edited", _message(edited="yesterday")),
    ("edited ts a number", "edited", _message(edited={"user": "U0MLS0001", "ts": 5})),
    ("bot_profile a string", "bot_profile", _message(bot_profile="bot", bot_id="B1")),
    ("username a number", "username", _message(subtype="bot_message", username=7, bot_id="B1")),
    ("an edit with a bad message", "message", _message(subtype="message_changed", message={"ts": 5})),
    ("deleted_ts a number", "deleted_ts", _message(subtype="message_deleted", deleted_ts=5)),
    ("reply_count a string", "reply_count", _message(reply_count="many")),
    ("a string", "", "just text"),
    ("null", "", None),
]

SLACK_USERS: list[tuple[str, str, Any]] = [
    ("id missing", "id", {"name": "eve"}),
    ("id a number", "id", {"id": 5, "name": "eve"}),
    ("profile a string", "profile", {"id": "U0EVE", "profile": "eve"}),
    ("display_name a number", "profile", {"id": "U0EVE", "profile": {"display_name": 5}}),
    ("real_name a list", "real_name", {"id": "U0EVE", "real_name": ["Eve"]}),
    ("a string", "", "eve"),
]

SLACK_CHANNELS: list[tuple[str, str, Any]] = [
    ("id a number", "id", {"id": 5, "name": "five"}),
    ("name missing", "name", {"id": "C0BAD"}),
    ("name a path", "name", {"id": "C0BAD", "name": "../general"}),
    ("a list", "", ["C0BAD"]),
]

GOOD_ISSUE = {
    "url": "https://api.github.com/repos/o/r/issues/900",
    "html_url": "https://github.com/o/r/issues/900",
    "number": 900,
    "title": "a good issue",
    "user": {"login": "ana"},
    "state": "open",
    "labels": [{"name": "bug"}],
    "body": "It works.",
    "created_at": "2026-09-01T00:00:00Z",
    "updated_at": "2026-09-02T00:00:00Z",
}


_MISSING = object()


def _issue(at: int, **fields: Any) -> dict[str, Any]:
    issue = {
        **GOOD_ISSUE,
        "number": at,
        "url": f"https://api.github.com/repos/o/r/issues/{at}",
        "html_url": f"https://github.com/o/r/issues/{at}",
    }
    issue.update(fields)
    return {k: v for k, v in issue.items() if v is not _MISSING}


GITHUB_ISSUES: list[tuple[str, str, Any]] = [
    ("title a number", "title", _issue(901, title=123)),
    ("title missing", "title", _issue(902, title=_MISSING)),
    ("number a string", "number", _issue(903, number="903")),
    ("number a boolean", "number", _issue(904, number=True)),
    ("number huge", "number", _issue(905, number=10**30)),
    ("html_url a number", "html_url", _issue(906, html_url=5)),
    ("updated_at not a time", "updated_at", _issue(907, updated_at="yesterday")),
    ("updated_at a number", "updated_at", _issue(908, updated_at=5)),
    ("created_at a number", "created_at", _issue(909, created_at=5)),
    ("body a number", "body", _issue(910, body=5)),
    ("user a string", "user", _issue(911, user="bob")),
    ("login a number", "user", _issue(912, user={"login": 5})),
    ("labels a string", "labels", _issue(913, labels="bug")),
    ("state a number", "state", _issue(914, state=5)),
    ("pull_request a string", "pull_request", _issue(915, pull_request="yes")),
    ("repository_url a number", "repository_url", _issue(916, repository_url=5)),
    ("comments a string", "comments", _issue(917, comments="many")),
    ("a string", "", "issue 918"),
]

GITHUB_COMMENTS: list[tuple[str, str, Any]] = [
    (
        "body a number",
        "body",
        {"issue_url": GOOD_ISSUE["url"], "body": 5, "created_at": "2026-09-03T00:00:00Z"},
    ),
    ("user a string", "user", {"issue_url": GOOD_ISSUE["url"], "body": "x", "user": "bob"}),
    ("created_at a number", "created_at", {"issue_url": GOOD_ISSUE["url"], "body": "x", "created_at": 5}),
    ("issue_url missing", "issue_url", {"body": "orphan"}),
    ("a number", "", 5),
]
