"""GitHub: issues with their comments, and pull requests, from the REST API or from a JSON dump.

The API read follows `Link`-header pagination, asks only for what changed `since` the last run
(sorted by update time, oldest first, so the cursor is simply the last update time read), and
waits out a rate limit (403/429 with `x-ratelimit-reset` or `retry-after`) up to the settings'
limit; past it, it stops cleanly with its cursor and the next refresh resumes from there.

The dump is the API's own shape, for offline use: `{"issues": [...], "comments": [...]}`, the
objects of `GET /repos/{owner}/{repo}/issues` and `.../issues/comments`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mlstack.sources import Skipped, SourceError
from mlstack.sources import http as api
from mlstack.sources.records import GitHubComment, GitHubIssue, kept, problem


def when(value: str | None) -> datetime | None:
    """An API time (ISO 8601, `Z` for UTC) as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def repository_of(issue: dict[str, Any]) -> str:
    """`owner/repo` of an issue, from its repository_url or its html_url."""
    url = issue.get("repository_url") or issue["html_url"]
    parts = url.rstrip("/").split("/")
    return "/".join(parts[-2:]) if issue.get("repository_url") else "/".join(parts[-4:-2])


@dataclass
class Threads:
    """Issues with their comments, in the API's own shape, and what could not be read."""

    threads: list[tuple[dict[str, Any], list[dict[str, Any]]]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    complete: bool = True
    cursor: str | None = None
    stopped: str | None = None


def dump_threads(path: Path) -> Threads:
    """The issues of a JSON dump, each with its comments."""
    result = Threads()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        result.skipped.append(Skipped(str(path), f"unreadable JSON ({exc})"))
        result.complete = False
        return result
    if not isinstance(data, dict) or not isinstance(data.get("issues"), list):
        result.skipped.append(Skipped(str(path), 'expected {"issues": [...], "comments": [...]}'))
        result.complete = False
        return result
    comments: dict[str, list[dict[str, Any]]] = defaultdict(list)
    listed = data.get("comments") or []
    if not isinstance(listed, list):
        result.skipped.append(Skipped(f"{path} comments", "expected a list"))
        listed = []
    for index, comment in enumerate(listed):
        reason = problem(GitHubComment, comment) or (
            None if comment.get("issue_url") else "issue_url: missing"
        )
        if reason:
            result.skipped.append(Skipped(f"{path} comments[{index}]", reason))
            continue
        comments[comment["issue_url"]].append(comment)
    for issue in kept(GitHubIssue, data["issues"], lambda i: f"{path} issues[{i}]", result.skipped):
        result.threads.append((issue, comments.get(issue.get("url", ""), [])))
    return result


def api_threads(
    repository: str, settings: Any, cursor: str | None = None, http_client: Any = None, source: str = ""
) -> Threads:
    """The issues of `owner/repo` updated since `cursor`, each with its comments."""
    if repository.count("/") != 1:
        raise SourceError(f"--source {source or repository}: expected github:OWNER/REPO or github:DUMP.json")
    http = api.client(http_client, _headers(settings))
    wait = settings.sources.rate_limit_wait_s
    root = settings.sources.github_api_url.rstrip("/")
    result = Threads(complete=False, cursor=cursor)
    params: dict[str, Any] | None = {"state": "all", "sort": "updated", "direction": "asc", "per_page": 100}
    if cursor:
        params["since"] = cursor  # type: ignore[index]
    url: str | None = f"{root}/repos/{repository}/issues"
    try:
        while url:
            response = api.get(http, url, params, wait)
            params = None  # the next link carries them
            page = response.url
            for issue in kept(GitHubIssue, _listed(response), lambda i, p=page: f"{p} [{i}]", result.skipped):
                comments_url = (
                    issue.get("comments_url")
                    or f"{root}/repos/{repository}/issues/{issue['number']}/comments"
                )
                comments = (
                    _comments(http, comments_url, wait, result.skipped) if issue.get("comments") else []
                )
                result.threads.append((issue, comments))
                result.cursor = issue["updated_at"]
            url = response.links.get("next", {}).get("url")
    except api.RateLimited as exc:
        result.stopped = f"{exc}; the next refresh resumes from {result.cursor or 'the start'}"
    return result


# GitHub answers a deleted issue 410 and one it no longer shows (or never had) 404.
GONE = frozenset({404, 410})


def issue_thread(
    repository: str, number: int, settings: Any, http_client: Any = None
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """One issue of `owner/repo` with its comments, as the API has it now; None when it is gone."""
    http = api.client(http_client, _headers(settings))
    wait = settings.sources.rate_limit_wait_s
    root = settings.sources.github_api_url.rstrip("/")
    response = api.get(http, f"{root}/repos/{repository}/issues/{number}", None, wait, allow=GONE)
    if response.status_code in GONE:
        return None
    issue = response.json()
    if reason := problem(GitHubIssue, issue):
        raise SourceError(f"GitHub answered {response.url} with an issue not in its shape: {reason}")
    skipped: list[Skipped] = []  # a comment not in GitHub's shape is left out, as a full read does
    comments_url = issue.get("comments_url") or f"{root}/repos/{repository}/issues/{number}/comments"
    comments = _comments(http, comments_url, wait, skipped) if issue.get("comments") else []
    return issue, comments


def _headers(settings: Any) -> dict[str, str]:
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if settings.sources.github_token is not None:
        headers["Authorization"] = f"Bearer {settings.sources.github_token.get_secret_value()}"
    return headers


def _listed(response: Any) -> list[Any]:
    """A page's records: the API answers a list, and anything else is a page it did not mean."""
    body = response.json()
    if not isinstance(body, list):
        raise SourceError(f"GitHub answered {response.url} with {type(body).__name__}, expected a list")
    return body


def _comments(http: Any, url: str | None, wait: float, skipped: list[Skipped]) -> list[dict[str, Any]]:
    comments: list[dict[str, Any]] = []
    params: dict[str, Any] | None = {"per_page": 100}
    while url:
        response = api.get(http, url, params, wait)
        params = None
        page = response.url
        comments += kept(GitHubComment, _listed(response), lambda i, p=page: f"{p} [{i}]", skipped)
        url = response.links.get("next", {}).get("url")
    return comments


def threads(location: str, settings: Any, cursor: str | None = None, http_client: Any = None) -> Threads:
    """A dump file's threads, or `owner/repo`'s from the API."""
    if Path(location).is_file():
        return dump_threads(Path(location))
    return api_threads(location, settings, cursor, http_client, f"github:{location}")
