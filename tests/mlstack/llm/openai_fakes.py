"""api.openai.com as the tests meet it: the real openai client over httpx2's MockTransport,
answering as OpenAI documents (chat.completion and embedding objects, error objects
{"error": {"message", "type", "param", "code"}}, and Retry-After on 429)."""

from __future__ import annotations

import httpx2

from mlstack.llm.providers import OPENAI_URL, Endpoint

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

    def endpoint(self, max_retries: int = 2) -> Endpoint:
        return Endpoint("openai", OPENAI_URL, "sk-test", 5.0, max_retries, self.client())

    def client(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self))


def embedding_page(vectors: list[list[float]], order: list[int]) -> dict:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": vectors[i]} for i in order],
        "model": "my-embedder",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
