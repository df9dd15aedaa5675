"""The API clients' shared GET: rate limits waited out or turned into a clean stop, and one clear
error for an unreachable host or a refused request."""

from __future__ import annotations

import httpx
import pytest

from mlstack.sources import SourceError
from mlstack.sources.http import RateLimited, get, wait_of

API = "https://api.github.com"


def test_a_429_with_retry_after_counts_as_a_rate_limit() -> None:
    response = httpx.Response(429, headers={"retry-after": "7"}, request=httpx.Request("GET", API))
    assert wait_of(response) == 7.0
    assert wait_of(httpx.Response(403, request=httpx.Request("GET", API))) is None  # a plain 403


def test_a_short_wait_is_slept_and_a_long_one_stops() -> None:
    answers = iter([httpx.Response(429, headers={"retry-after": "2"}), httpx.Response(200, json=[])])
    http = httpx.Client(transport=httpx.MockTransport(lambda request: next(answers)))
    slept: list[float] = []
    assert get(http, f"{API}/x", None, 5, sleep=slept.append).status_code == 200
    assert slept == [2.1]
    limited = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(429, headers={"retry-after": "60"}))
    )
    with pytest.raises(RateLimited, match="rate limited for 60s") as caught:
        get(limited, f"{API}/x?token=t", None, 5, sleep=slept.append)
    assert caught.value.wait_s == 60 and "token" not in str(caught.value)


def test_a_refused_request_names_the_url_without_its_query_and_what_to_check() -> None:
    refused = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(401, text="Bad credentials"))
    )
    with pytest.raises(
        SourceError, match=r"GET https://api.github.com/x answered 401: Bad credentials\. Check"
    ):
        get(refused, f"{API}/x?access_token=secret", None, 5)


@pytest.mark.parametrize(
    ("answer", "retried"),
    [(401, False), (404, False), (500, True), (503, True), ("unreachable", True)],
)
def test_only_what_a_later_try_can_fix_is_transient(answer: int | str, retried: bool) -> None:
    """The tasks that read sources retry transient failures only: a bad token (401) or a wrong
    name (404) failed three times, with a traceback each, before it failed."""
    from mlstack.errors import transient

    def respond(request: httpx.Request) -> httpx.Response:
        if answer == "unreachable":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(int(answer), text="no")

    with pytest.raises(SourceError) as caught:
        get(httpx.Client(transport=httpx.MockTransport(respond)), f"{API}/x", None, 5)
    assert transient(caught.value) is retried
