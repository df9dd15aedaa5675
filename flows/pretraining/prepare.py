"""`pretrain-prepare`: sources -> cleaned corpus -> training shards and a held-out validation shard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE
from pydantic import BaseModel, Field

from flows.pretraining.shared import PRESET, layout_of, preset_of
from flows.tasks.retry import transient_only
from mlstack.pretraining import clean, shards, sources
from mlstack.settings import get_settings
from models.lm.presets import PRESETS, PresetName


class PrepareParams(BaseModel):
    sources: list[str] = Field(
        default_factory=list,
        description="dir:FOLDER, git:REPO_FOLDER, packages[:NAME,NAME] or github:OWNER/REPO[@REF]."
        " Empty: the preset's default (installed packages' sources).",
    )
    preset: PresetName | None = PRESET


class PrepareResult(BaseModel):
    documents_read: int
    documents_kept: int
    stages: list[dict[str, Any]] = Field(description="Per cleaning stage: in, out, removed and why.")
    secrets_redacted: dict[str, int]
    shards: dict[str, int] = Field(description="Shard name -> documents; `validation` is held out.")
    corpus_dir: Path


@task(
    name="read-corpus", retries=2, retry_delay_seconds=5, retry_condition_fn=transient_only, cache_policy=NONE
)
def read_corpus(spec: str) -> list[Any]:
    settings = get_settings()
    docs = list(sources.read(sources.parse_spec(spec), settings, settings.pretrain.max_file_bytes))
    get_run_logger().info("%s: %d files", spec, len(docs))
    return docs


@flow(name="pretrain-prepare", log_prints=False)
def prepare_flow(params: PrepareParams = PrepareParams()) -> PrepareResult:
    """Read, clean, check and shard the corpus."""
    settings = get_settings()
    preset = preset_of(params.preset)
    specs = params.sources or list(PRESETS[preset].sources)
    parsed = [str(sources.parse_spec(s)) for s in specs]  # a bad --source fails before any read
    documents = [doc for spec in parsed for doc in read_corpus(spec)]
    cleaned = clean.clean(documents)
    table = cleaned.table()
    create_table_artifact(key="pretrain-corpus", table=table, description=f"Cleaning {', '.join(parsed)}")
    for row in table:
        get_run_logger().info("%(stage)s: %(in)d -> %(out)d %(why)s", row)
    clean.check(cleaned, settings.pretrain.min_documents, settings.pretrain.max_removed_share)
    written = shards.write(
        cleaned.documents, layout_of().corpus, settings.pretrain.shards, settings.pretrain.validation_share
    )
    counts = {name: sum(1 for _ in shards.read_shard(path)) for name, path in written.items()}
    return PrepareResult(
        documents_read=len(documents),
        documents_kept=len(cleaned.documents),
        stages=table,
        secrets_redacted=dict(cleaned.secrets),
        shards=counts,
        corpus_dir=layout_of().corpus,
    )
