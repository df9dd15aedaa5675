"""GitHub: the REST API through a fake transport shaped as GitHub documents it (Link pagination,
`since`, rate-limit headers), and the offline dump in the API's shape."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from mlstack.rag.defaults import SAMPLES
from mlstack.rag.sources import github
from mlstack.settings import get_settings
from tests.mlstack.sources.fakes import FakeGitHub


@pytest.fixture
def gh_settings(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MLSTACK_SOURCES_GITHUB_TOKEN", "ghp_test")
    monkeypatch.setenv("MLSTACK_SOURCES_RATE_LIMIT_WAIT_S", "3")
    return get_settings()


def client(fake: FakeGitHub) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(fake))


def test_the_api_follows_link_pages_reads_comments_and_asks_since_the_cursor(gh_settings) -> None:
    fake = FakeGitHub()
    read = github.read_api("o/r", "github:o/r", gh_settings, "2026-09-01T00:00:00Z", client(fake))
    first = fake.requests[0]
    assert first.headers["authorization"] == "Bearer ghp_test"
    assert first.url.params["since"] == "2026-09-01T00:00:00Z" and first.url.params["sort"] == "updated"
    by_id = {d.id: d for d in read.documents}
    assert set(by_id) == {"github:o/r#1", "github:o/r#2"}
    assert [u.split(" ")[0] for u in by_id["github:o/r#1"].units] == ["ana", "lena", "kofi"]
    assert by_id["github:o/r#2"].metadata["type"] == "pull request"
    assert read.cursor == "2026-09-03T00:00:00Z" and not read.complete
    assert len(read.skipped) == 1 and read.skipped[0].reason.startswith("number:")


def test_a_short_rate_limit_is_waited_out(gh_settings) -> None:
    fake = FakeGitHub(limit_on="page=2", reset_in=1)
    read = github.read_api("o/r", "github:o/r", gh_settings, None, client(fake))
    assert {d.id for d in read.documents} == {"github:o/r#1", "github:o/r#2"} and read.stopped is None


def test_a_long_rate_limit_stops_cleanly_and_the_next_run_resumes(gh_settings) -> None:
    fake = FakeGitHub(limit_on="page=2", reset_in=3600)
    read = github.read_api("o/r", "github:o/r", gh_settings, None, client(fake))
    assert [d.id for d in read.documents] == ["github:o/r#1"]
    assert read.cursor == "2026-09-02T00:00:00Z" and "resumes from 2026-09-02" in (read.stopped or "")
    resumed_fake = FakeGitHub()
    github.read_api("o/r", "github:o/r", gh_settings, read.cursor, client(resumed_fake))
    assert resumed_fake.requests[0].url.params["since"] == read.cursor


def test_the_dump_reads_issues_with_comments_and_skips_malformed_records(tmp_path: Path) -> None:
    data = json.loads((SAMPLES / "github.json").read_text())
    data["issues"].append(
        {"number": "x", "title": "bad", "html_url": "h", "updated_at": "2026-01-01T00:00:00Z"}
    )
    data["issues"].append("not an object")
    dump = tmp_path / "dump.json"
    dump.write_text(json.dumps(data))
    read = github.read_dump(dump, "github:dump")
    assert len(read.documents) == 5 and read.complete
    first = {d.id: d for d in read.documents}["github:mlstack-org/mlstack#41"]
    assert len(first.units) == 3 and first.url == "https://github.com/mlstack-org/mlstack/issues/41"
    assert sorted(s.where.rsplit(" ", 1)[-1] for s in read.skipped) == ["issues[5]", "issues[6]"]


def test_a_broken_dump_is_reported_not_raised(tmp_path: Path) -> None:
    dump = tmp_path / "dump.json"
    dump.write_text('{"issues": [')
    read = github.read_dump(dump, "github:dump")
    assert not read.documents and not read.complete and "unreadable JSON" in read.skipped[0].reason


def test_an_unreachable_api_is_one_clear_error(gh_settings) -> None:
    from mlstack.sources import SourceError

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    with pytest.raises(
        SourceError,
        match=r"cannot reach https://api.github.com/repos/o/r/issues: .*MLSTACK_SOURCES_GITHUB_API_URL",
    ):
        github.read_api(
            "o/r", "github:o/r", gh_settings, None, httpx.Client(transport=httpx.MockTransport(refuse))
        )
