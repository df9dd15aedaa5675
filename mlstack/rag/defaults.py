"""What RAG uses when nothing is named: the shipped samples and the project's docs, the shipped
question set, the configured embedder, and a chat model only when it is a capable one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlstack.settings import Settings, project_root

SAMPLES = Path(__file__).resolve().parent / "samples"
QUESTIONS = SAMPLES / "questions.jsonl"


def sources() -> list[str]:
    """The shipped Slack export and GitHub dump, and the project's own docs."""
    root = project_root()
    found = [f"slack:{SAMPLES / 'slack'}", f"github:{SAMPLES / 'github.json'}"]
    found += [f"docs:{path}" for path in (root / "README.md", root / "docs") if path.exists()]
    return found


def embedder(settings: Settings) -> Any:
    from mlstack.llm.embeddings import resolve_embedder

    return resolve_embedder(settings)


def capable_chat(settings: Settings, provider: str | None = None, model: str | None = None) -> Any | None:
    """The chat provider, or None when the local model does not follow a chat: the untrained
    stand-in (whose words are random) or a pretrained base model (which continues code). The
    answer is then extractive, and says so."""
    from mlstack.llm.local_server import follows_chat, local_model_dir
    from mlstack.llm.providers import resolve_chat

    kind = provider or settings.llm.chat_provider
    if kind == "local" and not follows_chat(local_model_dir(settings)):
        return None  # no need to start a server whose answers would not be used
    return resolve_chat(settings, provider, model)
