"""What the fine-tuning flows share: the experiment, the backend, the source's layout and the
base model, and the token counter of the model that will train."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect import get_run_logger
from pydantic import Field

from mlstack.fine_tuning import FinetuneError, Layout, chat, source_location
from mlstack.settings import get_settings

EXPERIMENT = "fine-tuning"

Backend = Literal["local", "openai"]

SOURCE = Field(
    default=None,
    description="github:OWNER/REPO or github:DUMP.json. Default: MLSTACK_FINETUNE_SOURCE, else the"
    " shipped sample dump.",
)


def layout_of(source: str | None) -> Layout:
    settings = get_settings()
    return Layout(settings.finetune_dir, source_location(source or settings.finetune.source))


def backend_of(backend: str | None) -> Backend:
    return backend or get_settings().finetune.backend  # type: ignore[return-value]


def counter_for(backend: Backend, base: Path | None) -> chat.Counter:
    """The tokens of the model that will train: OpenAI's encoding, or the local base's tokenizer."""
    from models.lm.lora import token_counter

    if backend == "openai":
        return token_counter(backend, None)
    try:
        found = base_dir(base)
    except FinetuneError as exc:  # a dataset can be built before there is a model to train
        get_run_logger().warning("%s; counting tokens by estimate", exc)
        found = None
    return token_counter(backend, found)


def base_dir(base: Path | None) -> Path:
    from mlstack.llm.local_server import is_model_dir, pretrained_champion

    found = base or pretrained_champion(get_settings())
    if found is None:
        raise FinetuneError(
            "no base model: the local backend adapts the pretraining champion, and there is none yet."
            " Run `mlstack pretrain run`, or pass --base DIR (any Hugging Face causal-LM directory)"
        )
    if not is_model_dir(found):
        raise FinetuneError(f"--base {found}: not a Hugging Face model directory (no config.json)")
    return found.resolve()


def dataset_files(source: str | None) -> tuple[Path, Path]:
    """The training and validation JSONL files that `finetune-dataset` writes for a source."""
    layout = layout_of(source)
    return layout.datasets / "train.jsonl", layout.datasets / "validation.jsonl"
