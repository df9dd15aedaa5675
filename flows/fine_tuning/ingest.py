"""`finetune-ingest`: issues -> Q&A pairs, one partition file per month."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE
from pydantic import BaseModel, Field

from flows.fine_tuning.shared import SOURCE, layout_of
from flows.tasks.retry import transient_only
from flows.tasks.runners import task_runner
from mlstack.fine_tuning import FinetuneError, pairs
from mlstack.settings import get_settings


class IngestParams(BaseModel):
    source: str | None = SOURCE


class IngestResult(BaseModel):
    source: str
    pairs: int
    dropped: dict[str, int] = Field(description="Issues without a usable pair, by reason.")
    partitions: dict[str, int] = Field(description="Month (YYYY-MM) -> pairs.")
    rewritten: list[str] = Field(description="Partitions written this run; the rest were unchanged.")
    skipped: list[str] = Field(default_factory=list, description="Records that could not be read.")
    partitions_dir: Path


@task(
    name="read-issues",
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=transient_only,
    cache_policy=NONE,
)
def read_issues(location: str) -> Any:
    from mlstack.sources import github

    read = github.threads(location, get_settings())
    get_run_logger().info("%s: %d issues, %d records skipped", location, len(read.threads), len(read.skipped))
    return read


@task(name="write-partition", cache_policy=NONE)
def write_partition(month: str, month_pairs: list[pairs.Pair], folder: Path) -> bool:
    return pairs.write_partition(month_pairs, folder / f"{month}.jsonl")


@flow(name="finetune-ingest", log_prints=False, task_runner=task_runner())
def ingest_flow(params: IngestParams = IngestParams()) -> IngestResult:
    """Issues -> Q&A pairs, one partition file per month."""
    settings = get_settings()
    layout = layout_of(params.source)
    read = read_issues(layout.source)
    if read.stopped or (not read.complete and not read.threads):
        # A partial read would rewrite its months with part of their pairs: write nothing.
        why = read.stopped or "; ".join(str(s) for s in read.skipped)
        raise FinetuneError(f"{layout.source}: {why}. Nothing was written; rerun to read it whole")
    extracted = pairs.extract(read.threads, settings.finetune.min_answer_chars)
    months = pairs.by_month(extracted.pairs)
    futures = {
        month: write_partition.submit(month, found, layout.partitions) for month, found in months.items()
    }
    rewritten = [month for month, future in futures.items() if future.result()]
    # A month whose issues are all gone now has no pairs: its old file must not feed training.
    for stale in set(p.stem for p in layout.partitions.glob("*.jsonl")) - set(months):
        (layout.partitions / f"{stale}.jsonl").unlink()
        rewritten.append(stale)
    result = IngestResult(
        source=layout.source,
        pairs=len(extracted.pairs),
        dropped=dict(extracted.dropped),
        partitions={month: len(found) for month, found in months.items()},
        rewritten=sorted(rewritten),
        skipped=[str(s) for s in read.skipped],
        partitions_dir=layout.partitions,
    )
    table = [{"partition": m, "pairs": n, "rewritten": m in rewritten} for m, n in result.partitions.items()]
    table += [
        {"partition": f"dropped: {why}", "pairs": n, "rewritten": False} for why, n in result.dropped.items()
    ]
    create_table_artifact(table, key="finetune-partitions", description=f"Q&A pairs from {layout.source}")
    get_run_logger().info(
        "%d pairs in %d partitions (%d rewritten), dropped %s",
        result.pairs,
        len(months),
        len(rewritten),
        dict(extracted.dropped) or "none",
    )
    return result
