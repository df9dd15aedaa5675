"""GitHub: the REST API through a fake transport shaped as GitHub documents it (Link pagination,
`since`, rate-limit headers), and the offline dump in the API's shape."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from mlstack.rag.defaults import SAMPLES
from mlstack.rag.sources import github
from mlstack.settings import get_settings

API = "https://api.github.com"


def issue(n: int, updated: str, comments: int = 0, pr: bool = False) -> dict:
    item = {
        "url": f"{API}/repos/o/r/issues/{n}",
        "repository_url": f"{API}/repos/o/r",
        "comments_url": f"{API}/repos/o/r/issues/{n}/comments",
        "html_url": f"https://github.com/o/r/issues/{n}",
        "number": n,
        "title": f"Issue {n}",
        "user": {"login": "ana"},
        "state": "open",
        "labels": [{"name": "bug"}],
        "comments": comments,
        "created_at": "2026-09-01T00:00:00Z",
        "updated_at": updated,
        "body": f"body {n}",
    }
    if pr:
        item["pull_request"] = {"url": f"{API}/repos/o/r/pulls/{n}"}
    return item


class FakeGitHub:
    """Two pages of issues (Link: rel="next"), one issue's comments, and optional rate limits."""

    def __init__(self, limit_on: str | None = None, reset_in: float = 0.0) -> None:
        self.limit_on = limit_on
        self.reset_in = reset_in
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if self.limit_on and self.limit_on in str(request.url):
            self.limit_on = None if self.reset_in < 5 else self.limit_on
            reset = str(int(time.time() + self.reset_in))
            return httpx.Response(
                403,
                headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset},
                json={"message": "API rate limit exceeded"},
            )
        if path == "/repos/o/r/issues" and request.url.params.get("page") != "2":
            link = (
                f'<{API}/repos/o/r/issues?page=2&per_page=100>; rel="next",'
                f' <{API}/repos/o/r/issues?page=2>; rel="last"'
            )
            return httpx.Response(
                200,
                headers={"Link": link},
                json=[issue(1, "2026-09-02T00:00:00Z", comments=2), {"title": "broken"}],
            )
        if path == "/repos/o/r/issues":
            return httpx.Response(200, json=[issue(2, "2026-09-03T00:00:00Z", pr=True)])
        if path == "/repos/o/r/issues/1/comments":
            comments = [
                {"user": {"login": "kofi"}, "body": "second", "created_at": "2026-09-02T02:00:00Z"},
                {"user": {"login": "lena"}, "body": "first", "created_at": "2026-09-02T01:00:00Z"},
            ]
            return httpx.Response(200, json=comments)
        return httpx.Response(404, json={"message": "Not Found"})


@pytest.fixture
def gh_settings(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MLSTACK_GITHUB_TOKEN", "ghp_test")
    monkeypatch.setenv("MLSTACK_RAG_RATE_LIMIT_WAIT_S", "3")
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
    assert len(read.skipped) == 1 and "missing number" in read.skipped[0].reason


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


def test_a_429_with_retry_after_counts_as_a_rate_limit() -> None:
    response = httpx.Response(429, headers={"retry-after": "7"}, request=httpx.Request("GET", API))
    from mlstack.rag.sources.http import wait_of

    assert wait_of(response) == 7.0
    assert wait_of(httpx.Response(403, request=httpx.Request("GET", API))) is None  # a plain 403


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
    from mlstack.rag import RAGError

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    with pytest.raises(
        RAGError, match=r"cannot reach https://api.github.com/repos/o/r/issues: .*MLSTACK_GITHUB_API_URL"
    ):
        github.read_api(
            "o/r", "github:o/r", gh_settings, None, httpx.Client(transport=httpx.MockTransport(refuse))
        )
