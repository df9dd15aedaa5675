"""A refresh of just the documents webhooks touched: each read again from its API (one GitHub
issue with its comments, one Slack thread), then written through the same plan and batches as a
full refresh (`mlstack.rag.refresh`), so ids, chunking and stale-chunk deletion are the same. A
document its API no longer has (a deleted issue or thread) is deleted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mlstack.errors import InputError
from mlstack.rag import refresh, store
from mlstack.rag.sources import Document, SourceRead, too_large

_GITHUB = re.compile(r"^github:(?P<repository>[^#\s]+/[^#\s]+)#(?P<number>\d+)$")
_SLACK = re.compile(r"^slack:(?P<channel>[A-Z0-9]+):(?P<ts>\d+\.\d+)$")


@dataclass
class Updated:
    """One source's touched documents after the update."""

    source: str
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # over the size limit: why
    embedded: int = 0


def fetch(document_id: str, settings: Any, http_client: Any = None) -> Document | None:
    """The document as its API has it now; None when the API says it is gone."""
    if match := _GITHUB.fullmatch(document_id):
        from mlstack.rag.sources.github import document
        from mlstack.sources.github import issue_thread

        repository = match["repository"]
        found = issue_thread(repository, int(match["number"]), settings, http_client)
        return document(*found, repository) if found else None
    if match := _SLACK.fullmatch(document_id):
        from mlstack.rag.sources.slack import threads, user_names
        from mlstack.sources.slack import thread

        channel = match["channel"]
        got = thread(channel, match["ts"], settings, http_client)
        made = threads(got.messages, channel, got.channel, user_names(got.users), {})
        return next((d for d in made if d.id == document_id), None)
    raise InputError(f"{document_id!r}: not a GitHub issue (github:owner/repo#N) nor a Slack thread id")


def update(
    conn: Any, name: str, source: str, ids: list[str], embedder: Any, settings: Any, http_client: Any = None
) -> Updated:
    """Read `ids` of `source` again and write what changed; delete what is gone."""
    result = Updated(source)
    limit = settings.rag.max_document_bytes
    read = SourceRead(source, complete=False)  # incremental: it deletes only what it names
    gone = []
    for document_id in ids:
        found = fetch(document_id, settings, http_client)
        if found is None:
            gone.append(document_id)
        elif found.size > limit:
            result.skipped.append(f"{document_id}: {too_large(found.size, limit)}")
        else:
            read.documents.append(found)
    plan = refresh.plan(conn, name, read)
    for batch in refresh.batches(plan.to_write, settings.rag.batch_documents, limit):
        result.embedded += refresh.ingest(conn, name, source, batch, embedder, settings)["embedded"]
    result.written = [d.id for d in plan.to_write]
    result.unchanged = sorted({d.id for d in read.documents} - set(result.written))
    result.deleted = store.delete_documents(conn, name, gone) if gone else []
    return result
