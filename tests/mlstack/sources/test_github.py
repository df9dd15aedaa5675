"""The GitHub client: issues with their comments from the API (pages, cursor, rate limits) or a
dump in its shape, malformed records skipped and named."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from mlstack.settings import get_settings
from mlstack.sources import SourceError, github
from tests.mlstack.sources.fakes import FakeGitHub


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MLSTACK_SOURCES_GITHUB_TOKEN", "ghp_test")
    monkeypatch.setenv("MLSTACK_SOURCES_RATE_LIMIT_WAIT_S", "3")
    return get_settings()


def test_threads_come_in_update_order_with_their_comments_and_a_cursor(settings) -> None:
    fake = FakeGitHub()
    read = github.threads("o/r", settings, None, httpx.Client(transport=httpx.MockTransport(fake)))
    assert [issue["number"] for issue, _ in read.threads] == [1, 2]
    assert [c["body"] for c in read.threads[0][1]] == ["second", "first"]  # as the API gave them
    assert read.cursor == "2026-09-03T00:00:00Z" and not read.complete and read.stopped is None
    assert [str(s) for s in read.skipped] == [
        "https://api.github.com/repos/o/r/issues?state=all&sort=updated&direction=asc&per_page=100 [1]:"
        " number: Field required"
    ]


def test_a_repository_that_is_not_owner_slash_repo_is_refused(settings) -> None:
    with pytest.raises(SourceError, match=r"expected github:OWNER/REPO or github:DUMP\.json"):
        github.api_threads("just-a-name", settings)


def test_a_dump_skips_what_it_cannot_read_and_names_it(tmp_path: Path) -> None:
    dump = tmp_path / "dump.json"
    good = {
        "number": 1,
        "title": "t",
        "html_url": "https://github.com/o/r/issues/1",
        "updated_at": "2026-09-01T00:00:00Z",
        "url": "u1",
    }
    bad_time = {**good, "number": 2, "updated_at": "yesterday"}
    dump.write_text(
        json.dumps({"issues": [good, bad_time, "x"], "comments": [{"issue_url": "u1", "body": "b"}, {}]})
    )
    read = github.dump_threads(dump)
    assert [(issue["number"], len(comments)) for issue, comments in read.threads] == [(1, 1)]
    assert sorted(str(s).removeprefix(str(dump) + " ") for s in read.skipped) == [
        "comments[1]: issue_url: missing",
        "issues[1]: updated_at: Invalid isoformat string: 'yesterday' (got 'yesterday')",
        "issues[2]: not a JSON object (str)",
    ]
    assert github.repository_of(good) == "o/r"
