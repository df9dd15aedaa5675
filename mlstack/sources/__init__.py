"""Clients of the external systems that RAG, pretraining and fine-tuning read: GitHub (the REST
API, or a dump in its shape), Slack (the Web API) and plain HTTP with rate limits waited out.
Their settings are one section, `sources` (MLSTACK_SOURCES_*: tokens and API roots).

They return the systems' own records; each capability makes of them what it needs (RAG
documents, Q&A pairs, a corpus).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlstack.errors import MlstackError


class SourceError(MlstackError):
    """An external system cannot be read; the message says what to check."""


class SourceUnavailable(SourceError):
    """Unreachable, or a 5xx: a later try may succeed, so the task's retries take it (a 401 or a
    404 is a SourceError, and fails at once)."""

    transient = True


@dataclass(frozen=True)
class Skipped:
    """A record a source could not read: where it is and why."""

    where: str  # file, and record within it
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"
