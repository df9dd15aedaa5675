"""GitHub issues and pull requests as RAG documents: one per issue, its comments in order. The
reading (the REST API with its cursor and rate limits, or a dump in its shape) is
`mlstack.sources.github`'s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlstack.rag.sources import Document, SourceRead
from mlstack.sources.github import Threads, api_threads, dump_threads, repository_of, when


def _login(item: dict[str, Any]) -> str:
    return (item.get("user") or {}).get("login") or "ghost"


def document(issue: dict[str, Any], comments: list[dict[str, Any]], repository: str) -> Document:
    kind = "pull request" if issue.get("pull_request") else "issue"
    opened = f"{_login(issue)} opened {kind} #{issue['number']} ({issue.get('created_at', '')[:10]})"
    units = [f"{opened}: {(issue.get('body') or '').strip()}"]
    for comment in sorted(comments, key=lambda c: c.get("created_at") or ""):
        body = (comment.get("body") or "").strip()
        if body:
            units.append(f"{_login(comment)} ({(comment.get('created_at') or '')[:10]}): {body}")
    return Document(
        id=f"github:{repository}#{issue['number']}",
        kind="github",
        title=issue["title"].strip(),
        units=tuple(units),
        url=issue["html_url"],
        author=_login(issue),
        created_at=when(issue.get("created_at")),
        updated_at=when(issue["updated_at"]),
        metadata={
            "repository": repository,
            "number": issue["number"],
            "type": kind,
            "state": issue.get("state"),
            "labels": [label.get("name") for label in issue.get("labels") or [] if isinstance(label, dict)],
        },
    )


def _documents(threads: Threads, source: str, repository: str | None = None) -> SourceRead:
    read = SourceRead(source, complete=threads.complete, cursor=threads.cursor, stopped=threads.stopped)
    read.skipped = threads.skipped
    read.documents = [
        document(issue, comments, repository or repository_of(issue)) for issue, comments in threads.threads
    ]
    return read


def read_dump(path: Path, source: str) -> SourceRead:
    return _documents(dump_threads(path), source)


def read_api(
    repository: str, source: str, settings: Any, cursor: str | None = None, http_client: Any = None
) -> SourceRead:
    """Issues and pull requests of `owner/repo` updated since `cursor` (an ISO time), with their
    comments. Incremental: it deletes nothing."""
    return _documents(api_threads(repository, settings, cursor, http_client, source), source, repository)
