"""Chat providers: OpenAI, any OpenAI-compatible server, or our own local models.

There is one code path: the official openai client (and LangChain's ChatOpenAI on top of it),
pointed at a base URL. The three chat providers differ only in where that URL comes from:

- `openai`: api.openai.com with OPENAI_API_KEY;
- `openai-compatible`: OPENAI_BASE_URL (vLLM, Ollama, LM Studio, TGI), with a key if it wants one;
- `local`: a Hugging Face causal-LM directory behind our own server on loopback, started on
  demand and reused (see `mlstack.llm.local_server`).

Requests time out (`MLSTACK_LLM_TIMEOUT_S`) and are retried by the openai client on 408, 409, 429,
5xx and timeouts, with exponential backoff that honours Retry-After. After the last retry,
`LLMError` names the endpoint, the status and what to do. Every provider reports a `ModelInfo`
with the model's name (and an embedder's dimension), so a vector store can refuse to mix vectors
from different models.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from mlstack.llm import ContextTooLong, LLMError
from mlstack.llm.local_server import api_key, follows_chat, local_model_dir, local_server, model_note
from mlstack.settings import Settings, get_settings

OPENAI_URL = "https://api.openai.com/v1"
OPENAI_CHAT_MODEL = "gpt-4o-mini"
LOCAL_API_KEY = "mlstack-local"  # the openai client insists on a key; our server, keyless, ignores it
RETRIED_STATUSES = {408, 409, 429}


@dataclass(frozen=True)
class ModelInfo:
    provider: str
    model: str
    dimension: int | None = None  # embeddings only
    base_url: str | None = None


def _hint(status: int, endpoint: Endpoint) -> str:
    if status == 401:
        return "Check OPENAI_API_KEY (or MLSTACK_LLM_OPENAI_API_KEY)."
    if status == 404:
        return "Check the model name (MLSTACK_LLM_MODEL) and the base URL."
    if status == 429:
        return "Rate limited: lower MLSTACK_LLM_ASK_CONCURRENCY, or raise MLSTACK_LLM_MAX_RETRIES."
    if status >= 500:
        return f"The server at {endpoint.base_url} failed; try again later, or look at its log."
    return "Fix the request as the message says."


@dataclass
class Endpoint:
    """Where requests go and how patiently: one openai client per endpoint, reused."""

    kind: str
    base_url: str
    api_key: str
    timeout_s: float = 60.0
    max_retries: int = 3
    http_client: Any = field(default=None, repr=False)  # a custom transport, e.g. in tests

    def options(self) -> dict[str, Any]:
        """What both the openai client and LangChain's ChatOpenAI take to reach this endpoint."""
        return {
            "base_url": self.base_url,
            "api_key": self.api_key,
            "timeout": self.timeout_s,
            "max_retries": self.max_retries,
            "http_client": self.http_client,
        }

    @cached_property
    def client(self) -> Any:
        from openai import OpenAI

        return OpenAI(**self.options())

    @contextmanager
    def explained(self) -> Iterator[None]:
        """Turn the openai client's final error into an LLMError that says what happened."""
        import openai

        try:
            yield
        except openai.APIStatusError as exc:
            status = exc.status_code
            retried = self.max_retries if status in RETRIED_STATUSES or status >= 500 else 0
            after = f" after {retried} retries" if retried else ""
            kind = ContextTooLong if getattr(exc, "code", None) == "context_length_exceeded" else LLMError
            raise kind(
                f"{exc.request.method} {exc.request.url} answered HTTP {status}{after}: "
                f"{_error_message(exc)}. {_hint(status, self)}"
            ) from exc
        except openai.APITimeoutError as exc:
            raise LLMError(
                f"{exc.request.method} {exc.request.url} timed out after {self.timeout_s:g} s, "
                f"{self.max_retries} retries. Raise MLSTACK_LLM_TIMEOUT_S or check the server."
            ) from exc
        except openai.APIConnectionError as exc:
            raise LLMError(
                f"{exc.request.method} {exc.request.url} could not connect after {self.max_retries}"
                f" retries ({exc.__cause__ or exc}). Is the server running? Check OPENAI_BASE_URL."
            ) from exc


def _error_message(exc: Any) -> str:
    body = exc.body
    if isinstance(body, dict):
        body = body.get("error", body)
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    return str(exc.message)


@dataclass(frozen=True)
class ChatResult:
    text: str
    finish_reason: str | None
    usage: dict[str, int]


@dataclass
class ChatProvider:
    """A chat model behind an endpoint."""

    endpoint: Endpoint
    model: str
    model_dir: Path | None = None  # local provider only

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(self.endpoint.kind, self.model, None, self.endpoint.base_url)

    @property
    def meaningful(self) -> bool:
        """False for the untrained stand-in (its words are random) and a pretrained base model
        (it continues code; it does not answer)."""
        return self.model_dir is None or follows_chat(self.model_dir)

    @property
    def note(self) -> str | None:
        """What a reader of this model's replies should know; None for a chat model."""
        return None if self.model_dir is None else model_note(self.model_dir)

    def complete(self, messages: list[dict[str, str]], **params: Any) -> ChatResult:
        """One chat completion through the openai client (temperature, max_tokens, stop, seed...)."""
        with self.endpoint.explained():
            response = self.endpoint.client.chat.completions.create(
                model=self.model, messages=messages, **params
            )
        usage = response.usage.model_dump() if response.usage else {}
        choice = response.choices[0]
        return ChatResult(choice.message.content or "", choice.finish_reason, usage)

    def chat_model(self, **params: Any) -> Any:
        """LangChain's ChatOpenAI on the same endpoint (temperature, max_tokens, seed...)."""
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model=self.model, **self.endpoint.options(), **params)


def openai_endpoint(settings: Settings, kind: str, http_client: Any = None) -> Endpoint:
    """The endpoint of OpenAI (`openai`) or of OPENAI_BASE_URL (`openai-compatible`)."""
    llm = settings.llm
    key = llm.openai_api_key.get_secret_value() if llm.openai_api_key else None
    if kind == "openai":
        if not key:
            raise LLMError(
                "the openai provider needs OPENAI_API_KEY; set it, or set OPENAI_BASE_URL for a"
                " compatible server, or MLSTACK_LLM_PROVIDER=local for the local model"
            )
        base_url = OPENAI_URL
    else:
        if not llm.openai_base_url:
            raise LLMError(
                "the openai-compatible provider needs OPENAI_BASE_URL, e.g."
                " http://localhost:11434/v1 for Ollama or http://localhost:8000/v1 for vLLM"
            )
        base_url = llm.openai_base_url.rstrip("/")
    return Endpoint(kind, base_url, key or LOCAL_API_KEY, llm.timeout_s, llm.max_retries, http_client)


def resolve_chat(
    settings: Settings | None = None,
    provider: str | None = None,
    model: str | None = None,
    http_client: Any = None,
) -> ChatProvider:
    """The chat provider the settings (or the arguments) ask for; `local` starts its server."""
    settings = settings or get_settings()
    kind = provider or settings.llm.chat_provider
    model = model or settings.llm.model
    if kind == "local":
        model_dir = local_model_dir(settings)
        base_url, served = local_server(settings, model_dir)
        endpoint = Endpoint(
            "local",
            base_url,
            api_key(settings) or LOCAL_API_KEY,
            settings.llm.timeout_s,
            settings.llm.max_retries,
            http_client,
        )
        return ChatProvider(endpoint, served, model_dir)
    if kind not in ("openai", "openai-compatible"):
        raise LLMError(f"unknown chat provider {kind!r}: use openai, openai-compatible or local")
    endpoint = openai_endpoint(settings, kind, http_client)
    if model is None and kind == "openai":
        model = OPENAI_CHAT_MODEL
    if model is None:  # a compatible server usually serves one model: use it
        with endpoint.explained():
            served = [m.id for m in endpoint.client.models.list()]
        if not served:
            raise LLMError(f"{endpoint.base_url}/models lists no models; set MLSTACK_LLM_MODEL")
        model = served[0]
    return ChatProvider(endpoint, model)
