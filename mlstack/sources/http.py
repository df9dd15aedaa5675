"""What the API clients share: one httpx client, and rate limits waited out or turned into a
clean stop that the next read resumes from."""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from mlstack.sources import SourceError, SourceUnavailable


class RateLimited(SourceError):
    """The API asks for a longer pause than the settings allow: stop here, resume next time."""

    def __init__(self, url: str, wait_s: float) -> None:
        super().__init__(f"{url} is rate limited for {wait_s:.0f}s more")
        self.wait_s = wait_s


def client(http_client: httpx.Client | None, headers: dict[str, str]) -> httpx.Client:
    """The given client (tests give one with a fake transport), or a new one."""
    if http_client is not None:
        http_client.headers.update(headers)
        return http_client
    return httpx.Client(headers=headers, timeout=30.0, follow_redirects=True)


def wait_of(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds the API asks us to wait, or None when the response is no rate limit.

    GitHub: 429, or 403 with `x-ratelimit-remaining: 0` (its reset is an epoch) or a
    `retry-after` (secondary limits). Slack: 429 with `Retry-After`.
    """
    headers = response.headers
    limited = response.status_code == 429 or (
        response.status_code == 403
        and (headers.get("x-ratelimit-remaining") == "0" or "retry-after" in headers)
    )
    if not limited:
        return None
    if retry := headers.get("retry-after"):
        try:
            return max(0.0, float(retry))
        except ValueError:
            return max(0.0, parsedate_to_datetime(retry).timestamp() - (now or time.time()))
    if reset := headers.get("x-ratelimit-reset"):
        return max(0.0, float(reset) - (now or time.time()))
    return 60.0  # GitHub's advice when it names no time


def get(
    http: httpx.Client,
    url: str,
    params: dict[str, Any] | None,
    max_wait_s: float,
    sleep: Callable[[float], None] = time.sleep,
    allow: frozenset[int] = frozenset(),
) -> httpx.Response:
    """GET, waiting out rate limits up to `max_wait_s` each; raises RateLimited beyond it. A
    status in `allow` (404 for a record that may be gone) is returned, not raised."""
    while True:
        try:
            response = http.get(url, params=params)
        except httpx.HTTPError as exc:
            raise SourceUnavailable(
                f"cannot reach {httpx.URL(url).copy_with(query=None)}: {exc}. Check the network, or"
                " the API root setting (MLSTACK_SOURCES_GITHUB_API_URL, MLSTACK_SOURCES_SLACK_API_URL)."
            ) from None
        wait = wait_of(response)
        if wait is None:
            if response.status_code >= 400 and response.status_code not in allow:
                failed = SourceUnavailable if response.status_code >= 500 else SourceError
                raise failed(
                    f"GET {response.request.url.copy_with(query=None)} answered {response.status_code}:"
                    f" {response.text[:200]}. Check the token and the name in --source."
                )
            return response
        if wait > max_wait_s:
            raise RateLimited(str(response.request.url.copy_with(query=None)), wait)
        sleep(wait + 0.1)
