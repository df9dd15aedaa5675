"""GitHub's REST API and Slack's Web API as fake transports for the real httpx client, shaped as
their documentation describes them (Link pagination, `since`, rate-limit headers; ok/error
bodies, next_cursor, 429 with Retry-After)."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Callable, Iterator

import httpx

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

    def __init__(self, limit_on: str | None = None, reset_in: float = 0.0, extra: list | None = None) -> None:
        self.limit_on = limit_on
        self.reset_in = reset_in
        self.extra = extra or []  # more records on the first page, as they come
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
                json=[issue(1, "2026-09-02T00:00:00Z", comments=2), {"title": "broken"}, *self.extra],
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


class FakeSlack:
    """Slack's Web API as it documents itself: ok/error bodies, next_cursor, 429 + Retry-After."""

    def __init__(self, limited: int = 0, retry_after: str = "0", extra: list | None = None) -> None:
        self.limited = limited
        self.retry_after = retry_after
        self.extra = extra or []  # more records on the first history page and in users.list
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        method = request.url.path.rsplit("/", 1)[-1]
        self.calls.append(method)
        assert request.headers["authorization"] == "Bearer xoxb-test"
        if self.limited:
            self.limited -= 1
            return httpx.Response(429, headers={"Retry-After": self.retry_after}, json={"ok": False})
        cursor = request.url.params.get("cursor")
        if method == "users.list":
            return httpx.Response(
                200, json={"ok": True, "members": [{"id": "U1", "name": "ana"}, *self.extra]}
            )
        if method == "conversations.info":
            return httpx.Response(200, json={"ok": True, "channel": {"id": "C1", "name": "help"}})
        if method == "conversations.history":
            if cursor is None:
                messages = [{"type": "message", "user": "U1", "text": "first", "ts": "100.1"}, *self.extra]
                return httpx.Response(
                    200, json={"ok": True, "messages": messages, "response_metadata": {"next_cursor": "p2"}}
                )
            messages = [
                {
                    "type": "message",
                    "user": "U1",
                    "text": "q?",
                    "ts": "200.1",
                    "thread_ts": "200.1",
                    "reply_count": 1,
                }
            ]
            return httpx.Response(
                200, json={"ok": True, "messages": messages, "response_metadata": {"next_cursor": ""}}
            )
        if method == "conversations.replies":
            messages = [
                {"type": "message", "user": "U1", "text": "q?", "ts": "200.1", "thread_ts": "200.1"},
                {"type": "message", "user": "U1", "text": "answer", "ts": "201.1", "thread_ts": "200.1"},
            ]
            return httpx.Response(200, json={"ok": True, "messages": messages})
        return httpx.Response(200, json={"ok": False, "error": "unknown_method"})


class GitHubIssues:
    """One repository's issues and comments that a test edits, served as GitHub's REST API
    documents them: `GET /repos/{repo}/issues` (one page), `.../issues/{n}` (404 once deleted)
    and `.../issues/{n}/comments`. Set
    `root` to where it is served: the records' URLs point there."""

    def __init__(self, repository: str = "o/r", root: str = API) -> None:
        self.repository = repository
        self.root = root
        self.issues: dict[int, dict] = {}  # number -> title, body, updated_at
        self.comments: dict[int, list[str]] = {}
        self.requests: list[str] = []

    def put(self, n: int, title: str, body: str, comments: list[str] = ()) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.issues[n] = {"title": title, "body": body, "updated_at": stamp}
        self.comments[n] = list(comments)

    def issue(self, n: int) -> dict:
        base = f"{self.root}/repos/{self.repository}/issues/{n}"
        return {
            "url": base,
            "repository_url": f"{self.root}/repos/{self.repository}",
            "comments_url": f"{base}/comments",
            "html_url": f"https://github.com/{self.repository}/issues/{n}",
            "number": n,
            "user": {"login": "ana"},
            "state": "open",
            "labels": [],
            "comments": len(self.comments[n]),
            "created_at": "2026-09-01T00:00:00Z",
            **self.issues[n],
        }

    def comment_records(self, n: int) -> list[dict]:
        return [
            {
                "id": n * 1000 + i,
                "user": {"login": "kofi"},
                "body": text,
                "created_at": f"2026-09-02T00:00:{i:02d}Z",
            }
            for i, text in enumerate(self.comments[n])
        ]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix(httpx.URL(self.root).path.rstrip("/"))
        self.requests.append(path)
        prefix = f"/repos/{self.repository}/issues/"
        if path == prefix.rstrip("/"):  # the listing a full refresh reads, all on one page
            return httpx.Response(200, json=[self.issue(n) for n in sorted(self.issues)])
        number, _, rest = path.removeprefix(prefix).partition("/")
        if path.startswith(prefix) and number.isdigit() and int(number) in self.issues:
            if rest == "":
                return httpx.Response(200, json=self.issue(int(number)))
            if rest == "comments":
                return httpx.Response(200, json=self.comment_records(int(number)))
        return httpx.Response(404, json={"message": "Not Found"})


@contextlib.contextmanager
def serve(handler: Callable[[httpx.Request], httpx.Response]) -> Iterator[str]:
    """A fake API on a loopback port, for processes a MockTransport cannot reach (a flow run by
    a worker): the same handler behind a real socket. Yields its root URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = f"http://{self.headers['Host']}{self.path}"
            answer = handler(httpx.Request("GET", url, headers=dict(self.headers)))
            body = answer.read()
            self.send_response(answer.status_code)
            for name, value in answer.headers.items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
