"""What RAG uses when nothing is named: the shipped samples and the project's docs, the shipped
question set, the configured embedder, and a chat model only when it is a capable one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlstack.settings import Settings, project_root

SAMPLES = Path(__file__).resolve().parent / "samples"
QUESTIONS = SAMPLES / "questions.jsonl"  # about the shipped Slack export and GitHub dump
DOCS_QUESTIONS = SAMPLES / "docs_questions.jsonl"  # about this project's README and docs/


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


def question_sets(held: set[str]) -> list[Path]:
    """The shipped question sets that apply to a collection holding the documents `held` names:
    each set whose every expected document is there; the samples' set when none is."""
    from mlstack.rag.evaluate import read_questions

    found = [
        path
        for path in (QUESTIONS, DOCS_QUESTIONS)
        if all(any(name in held for name in q.expected) for q in read_questions(path) if q.answerable)
    ]
    return found or [QUESTIONS]
