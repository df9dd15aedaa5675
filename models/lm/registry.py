"""The pretrained model in the MLflow registry: a version per trained model, and the champion
alias for the one that reads held-out code best.

A version's source is its run's `model` artifact: a Hugging Face directory. The gate scores the
challenger and the champion on the same validation text, in bits per byte (fair across
tokenizers), and promotes only a strictly better challenger, through the registry's one
promotion path (`models.tabular.registry.promote`: history first, alias second, under the lock).

The champion is also copied under home/models/pretrained/vN, with a pointer file, champion.json,
that the local LLM provider reads (`mlstack.llm.local_server.local_model_dir`): no process
needs MLflow to find the local model.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstack.io import write_json
from mlstack.settings import PRETRAINED_MODEL, Settings
from models.lm import evaluate
from models.tabular.registry import CHAMPION, alias_version, ensure_registered, promote


def _client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def register(run_id: str, artifact_uri: str, metrics: dict[str, float], validation_sha256: str) -> str:
    client = _client()
    ensure_registered(PRETRAINED_MODEL, "A small Python code model pretrained by the pretraining flow.")
    tags = {f"val.{k}": str(v) for k, v in metrics.items()} | {"validation.sha256": validation_sha256}
    return str(
        client.create_model_version(PRETRAINED_MODEL, source=artifact_uri, run_id=run_id, tags=tags).version
    )


@dataclass(frozen=True)
class Decision:
    version: str
    champion: str | None
    bits_per_byte: float
    champion_bits_per_byte: float | None
    promoted: bool
    reason: str


def champion_dir(settings: Settings, version: str) -> Path:
    """The champion's local copy, made from the registry if this machine lacks it."""
    local = settings.pretrained_models_dir / f"{PRETRAINED_MODEL}-v{version}"
    if (local / "config.json").is_file():
        return local
    import mlflow

    source = _client().get_model_version(PRETRAINED_MODEL, version).source
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
    _client().set_model_version_tag(PRETRAINED_MODEL, version, "gate.reason", decision.reason)
    if decision.promoted:
        # Alias first: a kill before the copy leaves the local provider on the previous
        # champion, a model that works, until the next promotion installs one.
        promote(version, reason=f"gate: {decision.reason}", name=PRETRAINED_MODEL)
        install(settings, version, model_dir)
    return decision


def install(settings: Settings, version: str, model_dir: Path) -> Path:
    """Copy the model to home/models/pretrained/vN and point champion.json at it (written whole)."""
    target = settings.pretrained_models_dir / f"{PRETRAINED_MODEL}-v{version}"
    if not (target / "config.json").is_file():
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(model_dir, tmp)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    write_json(
        {"model": PRETRAINED_MODEL, "version": version, "path": str(target)},
        settings.pretrained_champion_file,
    )
    return target
