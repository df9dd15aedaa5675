"""The deliveries table on a real Postgres: once per id, and pending until a refresh took it."""

from __future__ import annotations

import uuid

import pytest

from mlstack.settings import Settings
from mlstack.webhooks import deliveries, inbox
from tests.mlstack.webhooks.signing import dumps, github_issue

pytestmark = pytest.mark.slow


def delivery(repository: str, number: int) -> deliveries.Delivery:
    found = deliveries.github("issues", str(uuid.uuid4()), dumps(github_issue(repository, number)))
    assert isinstance(found, deliveries.Delivery)
    return found


def test_a_delivery_is_recorded_once_and_one_arriving_during_a_refresh_stays_pending(
    rag_settings: Settings,
) -> None:
    repository = f"o/inbox{uuid.uuid4().hex[:8]}"
    source = f"github:{repository}"
    with inbox.connect(rag_settings) as conn:
        first = delivery(repository, 1)
        assert inbox.record(conn, first) and not inbox.record(conn, first)
        assert inbox.record(conn, delivery(repository, 1))  # another delivery, the same issue
        assert inbox.record(conn, delivery(repository, 2))
        taken = inbox.pending(conn, source)
        assert taken.documents == {source: [f"{source}#1", f"{source}#2"]} and taken.deliveries == {source: 3}

        late = delivery(repository, 1)  # lands while the refresh that took issue 1 runs
        assert inbox.record(conn, late)
        assert inbox.done(conn, taken) == 3
        left = inbox.pending(conn, source)
        assert left.documents == {source: [f"{source}#1"]} and left.deliveries == {source: 1}
        assert inbox.done(conn, left) == 1 and not inbox.pending(conn, source)
        assert inbox.pending(conn, "github:some/other").documents == {}
