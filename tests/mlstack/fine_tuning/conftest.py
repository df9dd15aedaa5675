"""Issues and comments in the GitHub REST API's shape, built small enough to read in a test."""

from __future__ import annotations

from typing import Any

from mlstack.fine_tuning.pairs import Pair

API = "https://api.github.com/repos/acme/app"


def issue(number: int, created: str = "2026-07-02T09:00:00Z", pr: bool = False, **extra: Any) -> dict:
    data = {
        "url": f"{API}/issues/{number}",
        "repository_url": API,
        "html_url": f"https://github.com/acme/app/issues/{number}",
        "id": 5000 + number,
        "number": number,
        "title": f"Question {number}",
        "body": f"How do I do thing {number}?",
        "created_at": created,
        "updated_at": created,
        "user": {"login": "asker"},
    }
    if pr:
        data["pull_request"] = {"url": f"{API}/pulls/{number}"}
    return data | extra


def comment(
    body: str, association: str = "MEMBER", plus: int = 0, login: str = "maint", **extra: Any
) -> dict:
    return {
        "body": body,
        "author_association": association,
        "user": {"login": login},
        "reactions": {"+1": plus},
        **extra,
    }


def pair(
    number: int, month: str = "2026-07", answer: str = "Run the command that does it, then rerun."
) -> Pair:
    return Pair(
        key=f"acme/app#{number}",
        issue_id=5000 + number,
        url=f"https://github.com/acme/app/issues/{number}",
        month=month,
        question=f"Question {number}\n\nHow do I do thing {number}?",
        answer=answer,
        answered_by="maint",
        accepted=False,
    )
