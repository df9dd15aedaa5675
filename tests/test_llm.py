"""Providers: choosing one from settings, retries and errors over a fake transport, embeddings.

The network edge (api.openai.com) is faked with the real openai client over httpx2's
MockTransport, answering as OpenAI documents: chat.completion objects, error objects
{"error": {"message", "type", "param", "code"}}, and Retry-After on 429.
"""

from __future__ import annotations

from pathlib import Path

import httpx2
import numpy as np
import openai._base_client
import pytest

from mlstack import llm
from mlstack.settings import Settings

RATE_LIMITED = {
    "error": {
        "message": "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}
SERVER_ERROR = {
    "error": {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}
BAD_KEY = {
    "error": {
        "message": "Incorrect API key provided: sk-test. You can find your API key at"
        " https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
}


def completion(content: str = "DataFrame.drop_duplicates removes repeated rows.") -> dict:
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29},
        "system_fingerprint": "fp_06737a9306",
    }


class FakeOpenAI:
    """Answers each request with the next scripted step: (status, body, headers) or an exception."""

    def __init__(self, steps: list) -> None:
        self.steps = list(steps)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Exception):
            raise step
        status, body, headers = step
        return httpx2.Response(status, json=body, headers=headers)

    def endpoint(self, max_retries: int = 2) -> llm.Endpoint:
        client = httpx2.Client(transport=httpx2.MockTransport(self))
        return llm.Endpoint("openai", llm.OPENAI_URL, "sk-test", 5.0, max_retries, client)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The openai client's back-off sleeps, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(openai._base_client.time, "sleep", recorded.append)
    return recorded


def chat(endpoint: llm.Endpoint) -> llm.ChatProvider:
    return llm.ChatProvider(endpoint, "gpt-4o-mini")


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
    with pytest.raises(llm.LLMError) as caught:
        chat(fake.endpoint(max_retries=2)).complete(ASK)
    message = str(caught.value)
    assert "POST https://api.openai.com/v1/chat/completions answered HTTP 429 after 2 retries" in message
    assert "Rate limit reached for gpt-4o-mini" in message and "MLSTACK_ASK_CONCURRENCY" in message
    assert len(fake.requests) == 3 and waits == [1.0, 1.0]


def test_timeouts_are_retried_then_reported(waits: list[float]) -> None:
    fake = FakeOpenAI([httpx2.ReadTimeout("read timed out")])
    with pytest.raises(llm.LLMError, match=r"chat/completions timed out after 5 s, 2 retries"):
        chat(fake.endpoint()).complete(ASK)
    assert len(fake.requests) == 3 and len(waits) == 2


def test_a_bad_key_is_not_retried_and_says_what_to_check(waits: list[float]) -> None:
    fake = FakeOpenAI([(401, BAD_KEY, {})])
    with pytest.raises(llm.LLMError, match=r"answered HTTP 401: Incorrect API key.*Check OPENAI_API_KEY"):
        chat(fake.endpoint()).complete(ASK)
    assert len(fake.requests) == 1 and waits == []


def test_langchain_goes_through_the_same_retries(waits: list[float]) -> None:
    fake = FakeOpenAI([(429, RATE_LIMITED, {"retry-after-ms": "250"}), (200, completion("Use dropna."), {})])
    reply = chat(fake.endpoint()).chat_model(temperature=0).invoke("How do I drop missing values?")
    assert reply.content == "Use dropna." and waits == [0.25] and len(fake.requests) == 2


def embedding_page(vectors: list[list[float]], order: list[int]) -> dict:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": vectors[i]} for i in order],
        "model": "my-embedder",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }


def test_openai_embeddings_keep_input_order_and_learn_their_dimension() -> None:
    vectors = [[float(i)] * 8 for i in range(3)]
    fake = FakeOpenAI(
        [(200, embedding_page(vectors[:1], [0]), {}), (200, embedding_page(vectors, [2, 0, 1]), {})]
    )
    embedder = llm.OpenAIEmbedder(fake.endpoint(), "my-embedder")
    info = embedder.info  # an unknown model: its dimension is asked for once
    assert (info.provider, info.model, info.dimension) == ("openai", "my-embedder", 8)
    assert np.array_equal(embedder.embed(["a", "b", "c"]), np.array(vectors, dtype=np.float32))
    wrong = FakeOpenAI([(200, embedding_page(vectors, [0, 1, 2]), {})])
    with pytest.raises(llm.LLMError, match="8-dimensional vectors for text-embedding-3-small, expected 1536"):
        llm.OpenAIEmbedder(wrong.endpoint(), "text-embedding-3-small").embed(["a", "b", "c"])


def test_the_packaged_embedding_model_works_offline() -> None:
    embedder = llm.resolve_embedder(Settings())
    assert embedder.info == llm.ModelInfo("local", "all-MiniLM-L6-v2", 384)
    csv, csv_too, other = embedder.embed(
        ["How do I read a CSV file?", "Loading a CSV file into a DataFrame", "The train leaves at noon."]
    )
    assert np.isclose(np.linalg.norm(csv), 1.0, atol=1e-5)
    assert csv @ csv_too > csv @ other + 0.2


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
    assert Settings().chat_provider == expected


def test_openai_and_compatible_endpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    provider = llm.resolve_chat(Settings())
    assert provider.info == llm.ModelInfo("openai", "gpt-4o-mini", None, llm.OPENAI_URL)
    # A compatible server names its own model when none is configured.
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1/")
    models = {
        "object": "list",
        "data": [{"id": "llama3.2", "object": "model", "created": 1, "owned_by": "me"}],
    }
    fake = FakeOpenAI([(200, models, {})])
    client = httpx2.Client(transport=httpx2.MockTransport(fake))
    provider = llm.resolve_chat(Settings(), http_client=client)
    assert (provider.model, provider.endpoint.base_url) == ("llama3.2", "http://localhost:11434/v1")
    assert str(fake.requests[0].url) == "http://localhost:11434/v1/models"


def test_missing_configuration_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(llm.LLMError, match="needs OPENAI_API_KEY"):
        llm.resolve_chat(Settings(), provider="openai")
    with pytest.raises(llm.LLMError, match="needs OPENAI_BASE_URL"):
        llm.resolve_chat(Settings(), provider="openai-compatible")
    with pytest.raises(llm.LLMError, match="not a Hugging Face model directory"):
        llm.local_model_dir(Settings(llm_local_model=tmp_path))


def test_the_untrained_stand_in_is_created_once_and_says_so(tmp_path: Path) -> None:
    from models.lm.init import LMShape, init_model, is_untrained

    settings = Settings(home=tmp_path)
    path = llm.local_model_dir(settings)
    assert path == settings.untrained_model_dir and is_untrained(path)
    assert llm.local_model_dir(settings) == path  # reused, not rebuilt
    with pytest.raises(FileExistsError):
        init_model(path, LMShape())
