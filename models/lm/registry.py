"""The pretrained model in the MLflow registry: a version per trained model, and the champion
alias for the one that reads held-out code best.

A version's source is its run's `model` artifact: a Hugging Face directory. The gate scores the
challenger and the champion on the same validation text, in bits per byte (fair across
tokenizers), and promotes only a strictly better challenger, through the registry's one
promotion path (`mlstack.registry.promote`: history first, alias second, under the lock).

The champion is also copied under home/models/pretrained/vN, with a pointer file, champion.json,
that the local LLM provider reads (`mlstack.llm.local_server.local_model_dir`): no process
needs MLflow to find the local model.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from mlstack.io import atomic_dir, write_json
from mlstack.registry import CHAMPION, GATE, alias_version, client, new_version, promote
from mlstack.settings import FINETUNED_MODEL, PRETRAINED_MODEL, Settings
from models.lm import evaluate


def register(run_id: str, artifact_uri: str, metrics: dict[str, float], validation_sha256: str) -> str:
    tags = {f"val.{k}": str(v) for k, v in metrics.items()} | {"validation.sha256": validation_sha256}
    return new_version(PRETRAINED_MODEL, artifact_uri, run_id, tags)


@dataclass(frozen=True)
class Decision:
    version: str
    champion: str | None
    bits_per_byte: float
    champion_bits_per_byte: float | None
    promoted: bool
    reason: str


def champion_dir(settings: Settings, version: str, name: str = PRETRAINED_MODEL) -> Path:
    """A version's local copy (installed when it was promoted), else downloaded from the registry."""
    from mlstack.llm.local_server import is_model_dir

    folder = settings.pretrained_models_dir if name == PRETRAINED_MODEL else settings.finetuned_models_dir
    local = folder / f"{name}-v{version}"
    if is_model_dir(local):
        return local
    import mlflow

    source = client().get_model_version(name, version).source
    return Path(mlflow.artifacts.download_artifacts(source))


def gate(
    settings: Settings, version: str, model_dir: Path, bits_per_byte: float, validation: list[str]
) -> Decision:
    champion = alias_version(CHAMPION, PRETRAINED_MODEL)
    if champion is None:
        decision = Decision(version, None, bits_per_byte, None, True, "no champion yet")
    else:
        model, tokenizer = evaluate.load(champion_dir(settings, champion))
        theirs = evaluate.text_score(model, tokenizer, validation).bits_per_byte
        wins = bits_per_byte < theirs
        reason = (
            f"{bits_per_byte:.3f} bits/byte vs champion v{champion} {theirs:.3f} on the same validation text"
        )
        decision = Decision(version, champion, bits_per_byte, theirs, wins, reason)
    client().set_model_version_tag(PRETRAINED_MODEL, version, "gate.reason", decision.reason)
    if decision.promoted:
        # Alias first: a kill before the copy leaves the local provider on the previous
        # champion, a model that works, until the next promotion installs one.
        promote(version, reason=f"gate: {decision.reason}", name=PRETRAINED_MODEL)
        install(settings, version, model_dir)
    decided(PRETRAINED_MODEL, version, decision.promoted)
    return decision


def decided(name: str, version: str, promoted: bool) -> None:
    """The gate's last write: until it lands the version is pending, and a kill leaves it to
    `settle()` (which reads a version that reached the champion alias as promoted)."""
    client().set_model_version_tag(name, version, GATE, "promoted" if promoted else "rejected")


def _install(model_dir: Path, folder: Path, name: str, version: str, pointer: Path) -> Path:
    """Copy a champion to folder/<name>-v<version>, whole, and point `pointer` at it (written
    whole too): the local provider reads the pointer, never MLflow."""
    target = folder / f"{name}-v{version}"
    if not target.is_dir() or not any(target.iterdir()):
        with atomic_dir(target) as tmp:
            shutil.copytree(model_dir, tmp, dirs_exist_ok=True)
    write_json({"model": name, "version": version, "path": str(target)}, pointer)
    return target


def install(settings: Settings, version: str, model_dir: Path) -> Path:
    """The pretraining champion under home/models/pretrained, and champion.json pointing at it."""
    return _install(
        model_dir,
        settings.pretrained_models_dir,
        PRETRAINED_MODEL,
        version,
        settings.pretrained_champion_file,
    )


# The fine-tuning flow's model: a version per fine-tuned model, local (an adapter or a merged
# directory) or on OpenAI (a model name). Its gate compares chat scores on the validation set.


@dataclass(frozen=True)
class ChatScore:
    rouge_l: float
    loss: float | None = None  # mean loss per assistant token; None where it cannot be read (OpenAI)

    def beats(self, other: ChatScore) -> bool:
        """Strictly better: lower loss when both have one (and ROUGE-L no worse), else higher ROUGE-L."""
        if self.loss is not None and other.loss is not None:
            return self.loss < other.loss and self.rouge_l >= other.rouge_l
        return self.rouge_l > other.rouge_l

    def __str__(self) -> str:
        loss = f"loss {self.loss:.3f}, " if self.loss is not None else ""
        return f"{loss}ROUGE-L {self.rouge_l:.3f}"


def register_finetuned(run_id: str, source: str, tags: dict[str, str]) -> str:
    return new_version(FINETUNED_MODEL, source, run_id, tags)


def finetuned_champion() -> tuple[str, dict[str, str]] | None:
    """(version, tags) of the fine-tuned champion, or None."""
    version = alias_version(CHAMPION, FINETUNED_MODEL)
    if version is None:
        return None
    return version, dict(client().get_model_version(FINETUNED_MODEL, version).tags)


@dataclass(frozen=True)
class ChatDecision:
    version: str
    champion: str | None
    promoted: bool
    reason: str


def gate_finetuned(
    version: str, score: ChatScore, base: ChatScore, champion: ChatScore | None
) -> ChatDecision:
    """Champion only when it beats its base and the current champion on the same validation set."""
    current = alias_version(CHAMPION, FINETUNED_MODEL)
    against = f"base {base}" + (f", champion v{current} {champion}" if champion is not None else "")
    if not score.beats(base):
        promoted, reason = False, f"{score} does not beat {against}"
    elif current is not None and champion is None:
        promoted, reason = False, f"champion v{current} could not be scored on this validation set; kept"
    elif champion is not None and not score.beats(champion):
        promoted, reason = False, f"{score} does not beat {against}"
    else:
        promoted, reason = (
            True,
            f"{score} beats {against}" if current else f"{score} beats {against}; no champion yet",
        )
    client().set_model_version_tag(FINETUNED_MODEL, version, "gate.reason", reason)
    if promoted:
        promote(version, reason=f"gate: {reason}", name=FINETUNED_MODEL)
    decided(FINETUNED_MODEL, version, promoted)
    return ChatDecision(version, current, promoted, reason)


def install_finetuned(settings: Settings, version: str, model_dir: Path) -> Path:
    """A local fine-tuned champion (adapter or merged) under home/models/finetuned, and its pointer."""
    pointer = settings.finetuned_champion_file
    return _install(model_dir, settings.finetuned_models_dir, FINETUNED_MODEL, version, pointer)
