"""Text generation for a local Hugging Face causal LM: chat template, sampling, stop strings, streaming.

One decode loop with a KV cache serves both the streaming and the plain answer, so they always
agree. Sampling uses a generator seeded per request (OpenAI's `seed`), never torch's global state,
so concurrent requests cannot disturb each other's reproducibility.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

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


class LocalLM:
    """A causal LM directory loaded once; generation is serialised, as one CPU model allows."""

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
        self._lock = threading.Lock()

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

    def start(
        self,
        messages: list[dict[str, str]],
        params: GenerationParams,
        abandoned: Callable[[], bool] | None = None,
    ) -> tuple[Generation, Iterator[str]]:
        """Check the prompt now (so errors come before any streaming), then generate lazily;
        before each token, `abandoned()` may stop it (its client has gone)."""
        ids = self.prompt_ids(messages)
        room = self.context - len(ids)
        if room <= 0:
            raise PromptTooLong(f"the prompt has {len(ids)} tokens; {self.name} reads at most {self.context}")
        allowed = min(params.max_tokens, room)
        generation = Generation(prompt_tokens=len(ids), max_tokens=allowed)
        if allowed < params.max_tokens:  # said in the response's header, never in silence
            generation.capped_from = params.max_tokens
        return generation, self._stream(ids, allowed, params, generation, abandoned)

    def complete(self, messages: list[dict[str, str]], params: GenerationParams) -> Generation:
        generation, stream = self.start(messages, params)
        for _ in stream:
            pass
        return generation

    def _stream(
        self,
        ids: list[int],
        max_tokens: int,
        params: GenerationParams,
        generation: Generation,
        abandoned: Callable[[], bool] | None = None,
    ) -> Iterator[str]:
        import torch

        stops = tuple(s for s in params.stop if s) + self.implicit_stops
        rng = torch.Generator().manual_seed(params.seed if params.seed is not None else secrets.randbits(63))
        out: list[int] = []
        sent = 0
        with self._lock, torch.inference_mode():
            inputs, past = torch.tensor([ids]), None
            for _ in range(max_tokens):
                if abandoned is not None and abandoned():
                    generation.abandoned = True
                    return
                result = self.model(input_ids=inputs, past_key_values=past, use_cache=True)
                past = result.past_key_values
                token = self._pick(result.logits[0, -1], params, rng)
                if token in self.stop_ids:
                    generation.finish_reason = "stop"
                    break
                out.append(token)
                generation.completion_tokens = len(out)
                inputs = torch.tensor([[token]])
                text = self.tokenizer.decode(out, skip_special_tokens=True)
                if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                    continue
                cut = min((i for s in stops if (i := text.find(s, max(0, sent - len(s)))) >= 0), default=-1)
                if cut >= 0:
                    yield from self._emit(generation, text[sent:cut])
                    generation.finish_reason = "stop"
                    return
                ready = len(text) - _held_back(text, stops)
                if ready > sent:
                    yield from self._emit(generation, text[sent:ready])
                    sent = ready
            # Out of tokens, or stopped on a stop token: what was held back is plain text after all.
            yield from self._emit(generation, self.tokenizer.decode(out, skip_special_tokens=True)[sent:])

    @staticmethod
    def _emit(generation: Generation, piece: str) -> Iterator[str]:
        if piece:
            generation.text.append(piece)
            yield piece

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
