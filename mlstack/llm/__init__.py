"""LLMs and embeddings: one code path (the official openai client) to every model.

- `providers`: chat providers (OpenAI, any OpenAI-compatible server, our local models), the
  endpoint they share, and the errors that say what to do.
- `local_server`: the supervisor that starts a local model's OpenAI-compatible server on loopback
  and reuses a running one, with both sides of the announcement file that lets it.
- `embeddings`: the packaged all-MiniLM-L6-v2, or the OpenAI embeddings API.
"""

from __future__ import annotations

import os

from mlstack.errors import MlstackError

# Nothing may download at run time: every model loads from disk. Any import of this package
# sets it, so the server process and every embedder see it before transformers is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class LLMError(MlstackError):
    """An LLM or embedding request failed for good: says where, why, and what to do next."""


class ContextTooLong(LLMError):
    """The prompt is longer than the model reads (OpenAI's `context_length_exceeded`, which our
    local server answers too): a caller may send less and ask again."""
