"""The accepted deliveries, in Postgres: each recorded once by its id (a redelivery finds its row
and does nothing), and pending until a refresh has taken the document it touched.

A refresh takes what is pending at a moment and marks done only what was received by then, so a
delivery that lands while the refresh runs stays pending for the next one: nothing is lost
between a burst's first event and the refresh it started.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from mlstack import postgres
from mlstack.webhooks.deliveries import Delivery

DOMAIN = "webhooks"
MIGRATIONS = [
    postgres.Migration(
        1,
        "Webhook deliveries: one row per delivery id, pending until a refresh takes its document",
        """
        CREATE TABLE webhook_deliveries (
            id text PRIMARY KEY,
            source text NOT NULL,
            document text NOT NULL,
            event text NOT NULL,
            action text NOT NULL,
            received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            refreshed_at timestamptz
        );
        CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (source, received_at)
            WHERE refreshed_at IS NULL;
        """,
    )
]


def connect(settings: Any) -> psycopg.Connection:
    conn = postgres.connect(settings, autocommit=True)
    postgres.migrate(conn, DOMAIN, MIGRATIONS)
    return conn


def record(conn: psycopg.Connection, delivery: Delivery) -> bool:
    """Record a delivery; False when its id is already there (a redelivery or a retry)."""
    row = conn.execute(
        "INSERT INTO webhook_deliveries (id, source, document, event, action) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (id) DO NOTHING RETURNING id",
        (delivery.id, delivery.source, delivery.document, delivery.event, delivery.action),
    ).fetchone()
    return row is not None


@dataclass
class Pending:
    """The documents pending at `taken_at`, by source, and how many deliveries touched each source."""

    taken_at: datetime
    documents: dict[str, list[str]]
    deliveries: dict[str, int]

    def __bool__(self) -> bool:
        return bool(self.documents)

    def without(self, sources: set[str]) -> Pending:
        keep = {s: d for s, d in self.documents.items() if s not in sources}
        return Pending(self.taken_at, keep, {s: n for s, n in self.deliveries.items() if s in keep})


def pending(conn: psycopg.Connection, source: str | None = None) -> Pending:
    """What is pending now: for one source, or for all."""
    taken_at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    rows = conn.execute(
        "SELECT source, document, count(*) FROM webhook_deliveries"
        " WHERE refreshed_at IS NULL AND received_at <= %s AND (%s::text IS NULL OR source = %s)"
        " GROUP BY source, document ORDER BY source, min(received_at)",
        (taken_at, source, source),
    ).fetchall()
    documents: dict[str, list[str]] = defaultdict(list)
    deliveries: dict[str, int] = defaultdict(int)
    for row_source, document, count in rows:
        documents[row_source].append(document)
        deliveries[row_source] += count
    return Pending(taken_at, dict(documents), dict(deliveries))


def done(conn: psycopg.Connection, taken: Pending) -> int:
    """Mark what `taken` held as refreshed; a delivery received after it stays pending."""
    documents = [d for ds in taken.documents.values() for d in ds]
    return conn.execute(
        "UPDATE webhook_deliveries SET refreshed_at = clock_timestamp()"
        " WHERE refreshed_at IS NULL AND document = ANY(%s) AND received_at <= %s",
        (documents, taken.taken_at),
    ).rowcount


def counts(conn: psycopg.Connection) -> dict[str, int]:
    """Deliveries recorded and still pending, for `mlstack info` and the tests."""
    total, waiting = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE refreshed_at IS NULL) FROM webhook_deliveries"
    ).fetchone()
    return {"deliveries": total, "pending": waiting}
