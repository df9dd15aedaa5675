"""Q&A pairs from GitHub issues: the question is the issue's title and body, the answer its best
maintainer comment.

A maintainer is a comment author whose `author_association` is OWNER, MEMBER or COLLABORATOR.
The best answer is, in order: a comment accepted as the answer (`is_answer`, as discussion
exports mark it), else the maintainer comment with the most +1 reactions, else the longest one.
Pull requests, issues with no maintainer comment and answers too short to teach anything
('Fixed, thanks!') are dropped and counted by reason.

Pairs are partitioned by the month the issue was opened. A partition file is written whole, in
issue order, and only when its content changed: reruns are idempotent and byte-identical.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mlstack.io import json_lines, write_text
from mlstack.sources.github import repository_of

MAINTAINERS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})


class Pair(BaseModel):
    """One issue's question and its maintainers' answer."""

    key: str  # "owner/repo#number": stable across reruns and sources
    issue_id: int
    url: str
    month: str  # YYYY-MM the issue was opened
    question: str
    answer: str
    answered_by: str
    accepted: bool

    @property
    def hash(self) -> str:
        """Of the content a reviewer judges: a changed question or answer is asked about again."""
        return hashlib.sha256(f"{self.question}\0{self.answer}".encode()).hexdigest()[:16]


@dataclass
class Extracted:
    pairs: list[Pair] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)


def best_answer(comments: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The accepted answer if any, else the maintainer comment with the most +1s, then the longest."""
    accepted = [c for c in comments if c.get("is_answer") and (c.get("body") or "").strip()]
    if accepted:
        return accepted[0]
    ours = [
        c for c in comments if c.get("author_association") in MAINTAINERS and (c.get("body") or "").strip()
    ]
    if not ours:
        return None
    return max(ours, key=lambda c: ((c.get("reactions") or {}).get("+1", 0), len(c["body"].strip())))


def extract(
    threads: Iterable[tuple[dict[str, Any], list[dict[str, Any]]]], min_answer_chars: int
) -> Extracted:
    out = Extracted()
    for issue, comments in threads:
        if issue.get("pull_request"):
            out.dropped["pull request"] += 1
            continue
        answer = best_answer(comments)
        if answer is None:
            out.dropped["no maintainer answer"] += 1
            continue
        text = answer["body"].strip()
        if len(text) < min_answer_chars:
            out.dropped[f"answer under {min_answer_chars} characters"] += 1
            continue
        body = (issue.get("body") or "").strip()
        out.pairs.append(
            Pair(
                key=f"{repository_of(issue)}#{issue['number']}",
                issue_id=int(issue.get("id") or issue["number"]),
                url=issue["html_url"],
                month=(issue.get("created_at") or issue["updated_at"])[:7],
                question=f"{issue['title'].strip()}\n\n{body}".strip(),
                answer=text,
                answered_by=(answer.get("user") or {}).get("login") or "ghost",
                accepted=bool(answer.get("is_answer")),
            )
        )
    return out


def by_month(pairs: Iterable[Pair]) -> dict[str, list[Pair]]:
    months: dict[str, list[Pair]] = {}
    for pair in pairs:
        months.setdefault(pair.month, []).append(pair)
    return dict(sorted(months.items()))


def write_partition(pairs: list[Pair], path: Path) -> bool:
    """Write one month's pairs, sorted by key; False when the file already held exactly these."""
    text = "".join(p.model_dump_json() + "\n" for p in sorted(pairs, key=lambda p: p.key))
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    write_text(text, path)
    return True


def read_partition(path: Path) -> list[Pair]:
    lines = json_lines(path.read_text(encoding="utf-8"))
    return [Pair.model_validate(json.loads(line)) for line in lines if line.strip()]
