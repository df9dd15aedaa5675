"""Text generation for a local Hugging Face causal LM: chat template, sampling, stop strings,
streaming, and continuous batching.

One decode loop serves every request, streamed or not, so they always agree. It runs on one
long-lived thread per model and steps all the requests in flight together: each step is one
forward pass over a batch of their last tokens, with their KV caches left-padded to one length
and masked. A request joins the batch after its own prompt pass (the prompt is never padded, so
its first token is exactly the single-request one) and leaves it when done, stopped, or no one
waits for it any more; the others go on. Sampling uses a generator seeded per request (OpenAI's
`seed`), never torch's global state, so concurrent requests cannot disturb each other's
reproducibility.
"""

from __future__ import annotations

import queue
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from mlstack.settings import get_settings
from models.lm import lora
from models.lm.tokenizer import DEFAULT_CHAT_TEMPLATE, IM_END


class PromptTooLong(ValueError):
    """The prompt leaves no room to generate within the model's context."""


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 256
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass
class Generation:
    """Filled in while the text streams; complete once the stream is exhausted."""

    prompt_tokens: int
    completion_tokens: int = 0
    finish_reason: str = "length"
    text: list[str] = field(default_factory=list)
    max_tokens: int = 0  # what it may generate: the request's max_tokens, or the room left
    capped_from: int | None = None  # the request's max_tokens, when the context left less room
    abandoned: bool = False  # stopped because no one waits for it any more


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """How many trailing characters could still become a stop string, so must not be sent yet."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


Deliver = Callable[[str | BaseException | None], None]  # a text piece; None at the end; an error


class _Text:
    """Tokens to text for one request: stop strings cut it, and what could still become one is
    held back until it cannot."""

    def __init__(self, tokenizer: Any, stops: tuple[str, ...]) -> None:
        self.tokenizer, self.stops = tokenizer, stops
        self.out: list[int] = []
        self.sent = 0

    def push(self, token: int) -> tuple[str, bool]:
        """The text now safe to send, and whether a stop string ended the answer."""
        self.out.append(token)
        text = self.tokenizer.decode(self.out, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
            return "", False
        sent = self.sent
        cut = min((i for s in self.stops if (i := text.find(s, max(0, sent - len(s)))) >= 0), default=-1)
        if cut >= 0:
            self.sent = cut
            return text[sent:cut], True
        self.sent = max(sent, len(text) - _held_back(text, self.stops))
        return text[sent : self.sent], False

    def rest(self) -> str:
        """Out of tokens, or stopped on a stop token: what was held back is plain text after all."""
        return self.tokenizer.decode(self.out, skip_special_tokens=True)[self.sent :]


@dataclass(eq=False)
class _Request:
    ids: list[int]
    params: GenerationParams
    generation: Generation
    deliver: Deliver
    text: _Text
    rng: Any
    abandoned: Callable[[], bool] | None = None
    last: int = 0  # the token the next step feeds in
    position: int = 0  # its position in the sequence

    def gone(self) -> bool:
        if self.abandoned is not None and self.abandoned():
            self.generation.abandoned = True
        return self.generation.abandoned


class LocalLM:
    """A causal LM directory loaded once; its requests are generated together on one thread.

    One thread, always the same, runs every forward pass: OpenMP gives each thread that runs
    torch a team of its own, and with two teams libgomp counted more threads than cores, stopped
    spin-waiting and handed every operation over through the kernel (about 1,000 context
    switches per 32-token request, against 15 on one thread; benchmarks/llm_server.py went from
    1.22-1.37x the in-process time to 1.01-1.02x).
    """

    def __init__(self, model_dir: Path, name: str | None = None) -> None:
        self.path = model_dir.resolve()
        self.name = name or self.path.name
        self.model, self.tokenizer = lora.load(self.path)  # a model, or an adapter over its base
        config = self.model.config
        self.context = int(
            getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", 1024)
        )
        self.default_template = not getattr(self.tokenizer, "chat_template", None)
        self.chat_template = self.tokenizer.chat_template or DEFAULT_CHAT_TEMPLATE
        self.implicit_stops = (IM_END,) if self.default_template else ()
        stop_ids = {self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids(IM_END)}
        self.stop_ids = {i for i in stop_ids if isinstance(i, int) and i != self.tokenizer.unk_token_id}
        self.max_batch = get_settings().llm.server_max_batch
        # Called on the generation thread as each request ends, delivered or abandoned.
        self.finished: Callable[[Generation], None] = lambda _generation: None
        self._arrivals: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._lock = threading.Lock()  # held for each forward pass: whoever holds it has the model
        self.largest_batch = 0  # the most requests one forward pass served, for tests and metrics

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            messages, chat_template=self.chat_template, add_generation_prompt=True, tokenize=False
        )
        # No token holds more bytes than the vocabulary's longest: a text with more bytes than
        # that many contexts cannot fit, and is refused before it is tokenized (10 MB held the
        # generation thread for 14 s).
        if (size := len(text.encode("utf-8", "surrogatepass"))) > self.context * self.longest_token:
            raise PromptTooLong(
                f"the prompt has {size:,} bytes, at least {size // self.longest_token:,} tokens;"
                f" {self.name} reads at most {self.context}"
            )
        return self.tokenizer.encode(text, add_special_tokens=False)

    @cached_property
    def longest_token(self) -> int:
        """Bytes of the longest token in the vocabulary (byte-level tokens count their bytes)."""
        decoded = (self.tokenizer.convert_tokens_to_string([t]) for t in self.tokenizer.get_vocab())
        return max(len(t.encode("utf-8", "replace")) for t in decoded) or 1

    def submit(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        deliver: Deliver,
        abandoned: Callable[[], bool] | None = None,
    ) -> Generation:
        """Check the prompt now (errors are raised here, before anything is delivered), then
        queue it: `deliver` gets each piece of text from the generation thread, then None (or
        the error). Before each token, `abandoned()` may stop it (its client has gone)."""
        import torch

        ids = self.prompt_ids(messages)
        room = self.context - len(ids)
        if room <= 0:
            raise PromptTooLong(f"the prompt has {len(ids)} tokens; {self.name} reads at most {self.context}")
        allowed = min(params.max_tokens, room)
        generation = Generation(prompt_tokens=len(ids), max_tokens=allowed)
        if allowed < params.max_tokens:  # said in the response's header, never in silence
            generation.capped_from = params.max_tokens
        seed = params.seed if params.seed is not None else secrets.randbits(63)
        stops = tuple(s for s in params.stop if s) + self.implicit_stops
        request = _Request(
            ids,
            params,
            generation,
            deliver,
            _Text(self.tokenizer, stops),
            torch.Generator().manual_seed(seed),
            abandoned,
        )
        self._ensure_thread()
        self._arrivals.put(request)
        return generation

    def start(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        abandoned: Callable[[], bool] | None = None,
    ) -> tuple[Generation, Iterator[str]]:
        """`submit`, with the text as a blocking iterator; closing it early stops the generation."""
        pieces: queue.SimpleQueue[str | BaseException | None] = queue.SimpleQueue()
        closed = threading.Event()

        def gone() -> bool:
            return closed.is_set() or (abandoned is not None and abandoned())

        generation = self.submit(messages, params, pieces.put, gone)

        def stream() -> Iterator[str]:
            try:
                while (item := pieces.get()) is not None:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
            finally:
                closed.set()

        return generation, stream()

    def complete(self, messages: list[dict[str, str]], params: GenerationParams) -> Generation:
        generation, stream = self.start(messages, params)
        for _ in stream:
            pass
        return generation

    def close(self) -> None:
        """Let the generation thread end once the requests in flight are done (a new one restarts it)."""
        with self._start_lock:
            if self._thread is not None:
                self._arrivals.put(None)
                self._thread = None

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=f"generate-{self.name}", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        import torch

        batch = _Batch()
        closing = False
        with torch.inference_mode():
            while not (closing and not batch.requests):
                # Wait for work when idle; otherwise take what has arrived and step on.
                arrivals = [] if closing else [self._arrivals.get()] if not batch.requests else []
                while not closing and len(batch.requests) + len(arrivals) < self.max_batch:
                    try:
                        arrivals.append(self._arrivals.get_nowait())
                    except queue.Empty:
                        break
                if None in arrivals:
                    closing = True
                for request in (a for a in arrivals if a is not None):
                    self._guarded(self._prefill, batch, request)
                if batch.requests:
                    self._guarded(self._step, batch, None)

    def _guarded(self, work: Callable[[_Batch, Any], None], batch: _Batch, request: _Request | None) -> None:
        """An error fails the requests it touched, never the thread the others depend on."""
        try:
            with self._lock:
                work(batch, request)
        except Exception as exc:
            failed = [request] if request is not None else list(batch.requests)
            if request is None:
                batch.clear()
            for each in failed:
                self._end(each, exc)

    def _prefill(self, batch: _Batch, request: _Request) -> None:
        import torch

        if request.gone() or request.generation.max_tokens <= 0:
            self._end(request)
            return
        result = self.model(input_ids=torch.tensor([request.ids]), use_cache=True)
        request.position = len(request.ids)
        if self._advance(request, result.logits[0, -1]):
            batch.add(request, result.past_key_values)

    def _step(self, batch: _Batch, _request: None) -> None:
        import torch

        for request in [r for r in batch.requests if r.gone()]:
            batch.remove(request)
            self._end(request)
        if not batch.requests:
            return
        self.largest_batch = max(self.largest_batch, len(batch.requests))
        tokens = torch.tensor([[r.last] for r in batch.requests])
        positions = torch.tensor([[r.position] for r in batch.requests])
        mask = batch.grow_mask()
        result = self.model(
            input_ids=tokens,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=batch.cache,
            use_cache=True,
        )
        batch.cache = result.past_key_values
        for row, request in enumerate(list(batch.requests)):
            request.position += 1
            if not self._advance(request, result.logits[row, -1]):
                batch.remove(request)

    def _advance(self, request: _Request, logits: Any) -> bool:
        """Pick the request's next token and deliver its text; False when the request is done."""
        generation = request.generation
        token = self._pick(logits, request.params, request.rng)
        if token in self.stop_ids:
            generation.finish_reason = "stop"
            self._end(request, rest=True)
            return False
        generation.completion_tokens += 1
        piece, stopped = request.text.push(token)
        if piece:
            generation.text.append(piece)
            self._send(request, piece)
        if stopped:
            generation.finish_reason = "stop"
            self._end(request)
            return False
        if generation.completion_tokens >= generation.max_tokens:
            self._end(request, rest=True)
            return False
        request.last = token
        return True

    def _end(self, request: _Request, error: BaseException | None = None, rest: bool = False) -> None:
        if rest and (piece := request.text.rest()):
            request.generation.text.append(piece)
            self._send(request, piece)
        try:
            self.finished(request.generation)
        finally:
            self._send(request, error)

    @staticmethod
    def _send(request: _Request, item: str | BaseException | None) -> None:
        """Deliver to the request's reader; one whose reader cannot take it any more (its event
        loop closed) is abandoned, and the requests beside it in the batch go on."""
        try:
            request.deliver(item)
        except Exception:
            request.generation.abandoned = True

    @staticmethod
    def _pick(logits: Any, params: GenerationParams, rng: Any) -> int:
        import torch

        if params.temperature == 0:
            return int(logits.argmax())
        probs = torch.softmax(logits.float() / params.temperature, dim=-1)
        if params.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            # Keep the smallest set whose mass reaches top_p (always at least the top token).
            keep = sorted_probs.cumsum(0) - sorted_probs < params.top_p
            keep[0] = True  # a top_p below float32's least (1e-300) kept none, and sampling failed
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
        return int(torch.multinomial(probs, 1, generator=rng))


class _Batch:
    """The requests in flight, their KV caches as one left-padded cache, and its attention mask."""

    def __init__(self) -> None:
        self.requests: list[_Request] = []
        self.cache: Any = None
        self.mask: Any = None  # [batch, cached length]: 1 for a real position, 0 for padding

    def clear(self) -> None:
        self.requests, self.cache, self.mask = [], None, None

    def add(self, request: _Request, cache: Any) -> None:
        import torch

        length = cache.get_seq_length()
        if not self.requests:
            self.requests, self.cache, self.mask = [request], cache, torch.ones(1, length, dtype=torch.long)
            return
        have = self.mask.shape[1]
        width = max(have, length)
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([_left_pad(mine.keys, width), _left_pad(theirs.keys, width)])
            mine.values = torch.cat([_left_pad(mine.values, width), _left_pad(theirs.values, width)])
        mask = torch.ones(1, length, dtype=torch.long)
        self.mask = torch.cat([_left_pad(self.mask, width), _left_pad(mask, width)])
        self.requests.append(request)

    def remove(self, request: _Request) -> None:
        import torch

        row = self.requests.index(request)
        self.requests.pop(row)
        if not self.requests:
            self.clear()
            return
        keep = torch.tensor([i for i in range(self.mask.shape[0]) if i != row])
        self.mask = self.mask[keep]
        first = int(self.mask.any(dim=0).nonzero()[0])  # columns only padding are dropped
        self.mask = self.mask[:, first:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[keep, :, first:]
            layer.values = layer.values[keep, :, first:]

    def grow_mask(self) -> Any:
        """The mask for the next step: every row gets one more real position."""
        import torch

        self.mask = torch.cat([self.mask, torch.ones(self.mask.shape[0], 1, dtype=torch.long)], dim=1)
        return self.mask


def _left_pad(tensor: Any, width: int) -> Any:
    """Zeros before the sequence dimension's start (dim 2 of a cache, dim 1 of a mask), to `width`."""
    import torch

    dim = 2 if tensor.dim() == 4 else 1
    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([torch.zeros(shape, dtype=tensor.dtype), tensor], dim=dim)
