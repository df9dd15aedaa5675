"""Providers: choosing one from settings, and retries and errors over a fake api.openai.com."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from mlstack.llm import LLMError
from mlstack.llm.providers import OPENAI_URL, ChatProvider, Endpoint, ModelInfo, resolve_chat
from mlstack.settings import Settings
from tests.mlstack.llm.openai_fakes import BAD_KEY, RATE_LIMITED, SERVER_ERROR, FakeOpenAI, completion


def chat(endpoint: Endpoint) -> ChatProvider:
    return ChatProvider(endpoint, "gpt-4o-mini")


ASK = [{"role": "user", "content": "How do I drop duplicate rows?"}]


def test_429_is_retried_after_the_servers_retry_after(waits: list[float]) -> None:
    fake = FakeOpenAI([(429, RATE_LIMITED, {"retry-after": "7"}), (200, completion(), {})])
    result = chat(fake.endpoint()).complete(ASK)
    assert result.text.startswith("DataFrame.drop_duplicates") and result.usage["total_tokens"] == 29
    assert waits == [7.0] and len(fake.requests) == 2
    assert fake.requests[0].url == "https://api.openai.com/v1/chat/completions"


def test_5xx_is_retried_with_exponential_backoff(waits: list[float]) -> None:
    fake = FakeOpenAI([(500, SERVER_ERROR, {}), (503, SERVER_ERROR, {}), (200, completion(), {})])
    assert chat(fake.endpoint(max_retries=3)).complete(ASK).finish_reason == "stop"
    assert len(fake.requests) == 3
    # 0.5 s then 1 s, each less up to 25% jitter.
    assert 0.375 <= waits[0] <= 0.5 and 0.75 <= waits[1] <= 1.0


def test_after_the_last_retry_the_error_names_endpoint_and_status(waits: list[float]) -> None:
    fake = FakeOpenAI([(429, RATE_LIMITED, {"retry-after": "1"})])
    with pytest.raises(LLMError) as caught:
        chat(fake.endpoint(max_retries=2)).complete(ASK)
    message = str(caught.value)
    assert "POST https://api.openai.com/v1/chat/completions answered HTTP 429 after 2 retries" in message
    assert "Rate limit reached for gpt-4o-mini" in message and "MLSTACK_LLM_ASK_CONCURRENCY" in message
    assert len(fake.requests) == 3 and waits == [1.0, 1.0]


def test_timeouts_are_retried_then_reported(waits: list[float]) -> None:
    fake = FakeOpenAI([httpx2.ReadTimeout("read timed out")])
    with pytest.raises(LLMError, match=r"chat/completions timed out after 5 s, 2 retries"):
        chat(fake.endpoint()).complete(ASK)
    assert len(fake.requests) == 3 and len(waits) == 2


def test_a_bad_key_is_not_retried_and_says_what_to_check(waits: list[float]) -> None:
    fake = FakeOpenAI([(401, BAD_KEY, {})])
    with pytest.raises(LLMError, match=r"answered HTTP 401: Incorrect API key.*Check OPENAI_API_KEY"):
        chat(fake.endpoint()).complete(ASK)
    assert len(fake.requests) == 1 and waits == []


def test_langchain_goes_through_the_same_retries(waits: list[float]) -> None:
    fake = FakeOpenAI([(429, RATE_LIMITED, {"retry-after-ms": "250"}), (200, completion("Use dropna."), {})])
    reply = chat(fake.endpoint()).chat_model(temperature=0).invoke("How do I drop missing values?")
    assert reply.content == "Use dropna." and waits == [0.25] and len(fake.requests) == 2


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "local"),
        ({"OPENAI_API_KEY": "sk-test"}, "openai"),
        ({"OPENAI_BASE_URL": "http://localhost:11434/v1"}, "openai-compatible"),
        ({"OPENAI_API_KEY": "sk-test", "MLSTACK_LLM_PROVIDER": "local"}, "local"),
    ],
)
def test_one_environment_variable_switches_the_provider(
    env: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert Settings().llm.chat_provider == expected


def test_openai_and_compatible_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    provider = resolve_chat(Settings())
    assert provider.info == ModelInfo("openai", "gpt-4o-mini", None, OPENAI_URL)
    # A compatible server names its own model when none is configured.
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1/")
    models = {
        "object": "list",
        "data": [{"id": "llama3.2", "object": "model", "created": 1, "owned_by": "me"}],
    }
    fake = FakeOpenAI([(200, models, {})])
    provider = resolve_chat(Settings(), http_client=fake.client())
    assert (provider.model, provider.endpoint.base_url) == ("llama3.2", "http://localhost:11434/v1")
    assert str(fake.requests[0].url) == "http://localhost:11434/v1/models"


def test_missing_configuration_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(LLMError, match="needs OPENAI_API_KEY"):
        resolve_chat(Settings(), provider="openai")
    with pytest.raises(LLMError, match="needs OPENAI_BASE_URL"):
        resolve_chat(Settings(), provider="openai-compatible")
