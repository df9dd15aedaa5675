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
