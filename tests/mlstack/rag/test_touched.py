"""A refresh of just the touched documents, on the real store: each issue or thread read again
through the real httpx client (a fake transport shaped as GitHub's and Slack's APIs), written as
a full refresh writes it, and deleted when its API says it is gone."""

from __future__ import annotations

import httpx
import pytest

from mlstack.llm.embeddings import local_embedder
from mlstack.rag import refresh, sources, store, touched
from mlstack.settings import Settings
from tests.mlstack.sources.fakes import FakeSlack, GitHubIssues

pytestmark = pytest.mark.slow


def texts(settings: Settings, name: str, document: str) -> list[str]:
    with store.connect(settings) as conn:
        rows = conn.execute(
            "SELECT text FROM rag_chunks WHERE collection = %s AND document_id = %s ORDER BY ord",
            (name, document),
        )
        return [row[0] for row in rows]


def update(settings: Settings, name: str, source: str, ids: list[str], fake: object) -> touched.Updated:
    with store.connect(settings) as conn:
        store.ensure_collection(conn, name, local_embedder().info)
        client = httpx.Client(transport=httpx.MockTransport(fake))
        return touched.update(conn, name, source, ids, local_embedder(), settings, client)


def test_an_issue_is_written_replaced_when_edited_and_deleted_when_gone(
    rag_settings: Settings, collection: str
) -> None:
    github = GitHubIssues("octo/cat")
    github.put(5, "Cache eviction stalls", "The LRU cache evicts nothing.", ["Try maxsize=128."])
    github.put(6, "Other", "Untouched by this delivery.")
    first = update(rag_settings, collection, "github:octo/cat", ["github:octo/cat#5"], github)
    assert first.written == ["github:octo/cat#5"] and first.embedded > 0
    assert github.requests == ["/repos/octo/cat/issues/5", "/repos/octo/cat/issues/5/comments"]
    before = texts(rag_settings, collection, "github:octo/cat#5")
    assert any("maxsize=128" in t for t in before)

    github.put(5, "Cache eviction stalls", "The LRU cache evicts nothing at all.", [])  # comment deleted
    second = update(rag_settings, collection, "github:octo/cat", ["github:octo/cat#5"], github)
    assert second.written == ["github:octo/cat#5"]
    after = texts(rag_settings, collection, "github:octo/cat#5")
    assert any("at all" in t for t in after) and not any("maxsize" in t for t in after)

    again = update(rag_settings, collection, "github:octo/cat", ["github:octo/cat#5"], github)
    assert again.written == [] and again.unchanged == ["github:octo/cat#5"] and again.embedded == 0

    del github.issues[5]
    gone = update(rag_settings, collection, "github:octo/cat", ["github:octo/cat#5"], github)
    assert (
        gone.deleted == ["github:octo/cat#5"] and texts(rag_settings, collection, "github:octo/cat#5") == []
    )


def test_a_touched_issue_is_stored_as_a_full_refresh_stores_it(
    rag_settings: Settings, collection: str
) -> None:
    """Same id, same hash, same chunks: the full refresh that follows finds it unchanged."""
    github = GitHubIssues("o/r")
    github.put(1, "Issue 1", "body 1", ["first", "second"])
    update(rag_settings, collection, "github:o/r", ["github:o/r#1"], github)
    by_update = texts(rag_settings, collection, "github:o/r#1")

    client = httpx.Client(transport=httpx.MockTransport(github))  # its listing, then each issue
    read = sources.read(sources.parse_spec("github:o/r"), rag_settings, None, client)
    with store.connect(rag_settings) as conn:
        plan = refresh.plan(conn, collection, read)
    assert (plan.added, plan.changed, plan.unchanged) == ([], [], 1)
    assert by_update == texts(rag_settings, collection, "github:o/r#1")


def test_a_slack_thread_is_read_with_its_replies_and_names(
    rag_settings: Settings, collection: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSTACK_SOURCES_SLACK_TOKEN", "xoxb-test")
    from mlstack.settings import get_settings

    settings = get_settings()
    done = update(settings, collection, "slack:C1", ["slack:C1:200.1"], FakeSlack())
    assert done.written == ["slack:C1:200.1"]
    [text] = texts(settings, collection, "slack:C1:200.1")
    assert "ana" in text and "q?" in text and "answer" in text

    class Gone(FakeSlack):
        def __call__(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("conversations.replies"):
                return httpx.Response(200, json={"ok": False, "error": "thread_not_found"})
            return super().__call__(request)

    assert update(settings, collection, "slack:C1", ["slack:C1:200.1"], Gone()).deleted == ["slack:C1:200.1"]


def test_an_id_that_is_no_issue_nor_thread_is_refused_by_name(rag_settings: Settings) -> None:
    from mlstack.errors import InputError

    with pytest.raises(InputError, match=r"'docs:a\.md'"):
        touched.fetch("docs:a.md", rag_settings)
