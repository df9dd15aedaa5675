"""`mlstack rag`: the RAG pattern: refresh a collection, search it, ask it, evaluate it."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlstack.cli.options import build
from mlstack.cli.render import JSON, console, fail, show
from mlstack.cli.running import run_flow

if TYPE_CHECKING:
    from flows.rag import RagAnswerResult, RagEvalResult, RagRefreshResult, RagUpdateResult
    from mlstack.rag.retrieve import Hit

app = typer.Typer(
    help="Retrieval-augmented generation over GitHub, Slack and docs, in pgvector.", no_args_is_help=True
)
COLLECTION = typer.Option(None, "--collection", "-c", help="The collection. Default: MLSTACK_RAG_COLLECTION.")


class Mode(StrEnum):
    vector = "vector"
    fulltext = "fulltext"
    hybrid = "hybrid"


class Kind(StrEnum):
    docs = "docs"
    slack = "slack"
    github = "github"


@app.command("refresh")
def refresh_command(
    source: list[str] = typer.Option(
        [],
        "--source",
        "-s",
        help="KIND:LOCATION, repeatable: docs:FOLDER, slack:EXPORT_DIR or"
        " slack:CHANNEL_ID, github:DUMP.json or github:OWNER/REPO. None: the shipped samples and docs.",
    ),
    collection: str | None = COLLECTION,
    evaluate: bool = typer.Option(True, help="Score retrieval on the question set afterwards."),
    questions: Path | None = typer.Option(
        None, help="Questions for the evaluation. Default: the shipped set."
    ),
    prune: bool = typer.Option(
        False,
        "--prune",
        help="Also delete the documents of the collection's sources not named here (a docs folder"
        " that moved, a retired export).",
    ),
    as_json: bool = JSON,
) -> None:
    """Bring a collection up to date: add, change and delete what the sources did, nothing more.

    Rerun it any time: an unchanged source writes nothing, and a refresh that was killed
    finishes the job. A record a source cannot read, or a document over
    MLSTACK_RAG_MAX_DOCUMENT_BYTES, is skipped and named; a source that cannot be read at all
    fails the run after the others have landed. Tokens for the APIs:
    MLSTACK_SOURCES_GITHUB_TOKEN, MLSTACK_SOURCES_SLACK_TOKEN.
    """
    from flows.rag import RagRefreshParams, rag_refresh_flow

    params = build(
        RagRefreshParams,
        sources=source,
        collection=collection,
        evaluate=evaluate,
        questions=questions,
        prune=prune,
    )
    show(run_flow(rag_refresh_flow, params), render_refresh, as_json)


def render_refresh(result: RagRefreshResult) -> RenderableType:
    table = Table(
        "source", "added", "changed", "unchanged", "deleted", "skipped", "embedded", title=result.collection
    )
    table.columns[0].overflow = "fold"
    for c in result.sources:
        table.add_row(
            c.source,
            *(str(v) for v in (c.added, c.changed, c.unchanged, c.deleted, c.skipped, c.chunks_embedded)),
        )
    notes: list[RenderableType] = [table, Text(f"{result.documents} documents, {result.chunks} chunks")]
    for c in result.sources:
        notes += [Text(f"skipped {record}", style="yellow") for record in c.skipped_records]
        if c.stopped:
            notes.append(Text(f"{c.source} stopped early: {c.stopped}", style="yellow"))
    for other, count in result.other_sources.items():
        if result.pruned:
            notes.append(Text(f"pruned {other} ({count} documents): not named in this refresh"))
        else:
            notes.append(
                Text(
                    f"{other} ({count} documents) is not named in this refresh: `mlstack rag drop"
                    f" {result.collection} --source {other}`, or refresh with --prune",
                    style="yellow",
                )
            )
    if result.evaluation is not None:
        notes.append(render_eval(result.evaluation))
    return Group(*notes)


@app.command("update")
def update_command(
    source: str | None = typer.Option(
        None, "--source", "-s", help="github:OWNER/REPO or slack:CHANNEL_ID only. Default: every source."
    ),
    collection: str | None = COLLECTION,
    settle_s: float = typer.Option(
        0.0,
        help="Keep taking deliveries that arrive for this long (the deployment's trigger waits"
        " MLSTACK_WEBHOOKS_COALESCE_S).",
    ),
    as_json: bool = JSON,
) -> None:
    """Refresh just the documents webhook deliveries touched since the last update: each issue or
    thread read again from its API, written as a full refresh writes it, deleted if gone.

    `mlstack up` runs this on every delivery `mlstack serve-webhooks` accepts (the rag-update
    deployment's trigger); by hand it drains what is pending, e.g. after the server was down.
    """
    from flows.rag import RagUpdateParams, rag_update_flow

    params = build(RagUpdateParams, source=source, collection=collection, settle_s=settle_s)
    show(run_flow(rag_update_flow, params), render_update, as_json)


def render_update(result: RagUpdateResult) -> RenderableType:
    table = Table("source", "written", "unchanged", "deleted", "skipped", "embedded", title=result.collection)
    table.columns[0].overflow = "fold"
    for c in result.sources:
        counts = (len(c.written), len(c.unchanged), len(c.deleted), len(c.skipped), c.chunks_embedded)
        table.add_row(c.source, *(str(v) for v in counts))
    notes: list[RenderableType] = [
        table,
        Text(
            f"{result.deliveries} deliveries taken in {result.rounds} rounds;"
            f" {result.documents} documents, {result.chunks} chunks"
        ),
    ]
    notes += [Text(f"skipped {record}", style="yellow") for c in result.sources for record in c.skipped]
    return Group(*notes)


@app.command("search")
def search_command(
    question: str = typer.Argument(..., help="What to look for, in plain words."),
    k: int | None = typer.Option(None, "--k", help="Documents to return. Default: MLSTACK_RAG_K."),
    mode: Mode = typer.Option(
        Mode.hybrid, help="vector (meaning), fulltext (words) or hybrid (both, fused)."
    ),
    kind: list[Kind] = typer.Option([], "--kind", help="Only these source kinds (repeatable)."),
    since: datetime | None = typer.Option(None, help="Only documents updated at or after this time."),
    until: datetime | None = typer.Option(None, help="Only documents updated before this time."),
    collection: str | None = COLLECTION,
    as_json: bool = JSON,
) -> None:
    """Search a collection; each hit is a document with its best chunk."""
    from mlstack.rag import defaults, retrieve
    from mlstack.settings import get_settings

    settings = get_settings()
    filters = retrieve.Filters(tuple(k.value for k in kind), since, until)
    name = collection or settings.rag.collection
    embedder = defaults.embedder(settings)
    hits = retrieve.find(settings, embedder, name, question, k or settings.rag.k, mode.value, filters)
    if as_json:
        print(
            json.dumps(
                {"question": question, "mode": mode.value, "hits": [h.as_dict() for h in hits]}, default=str
            )
        )
        return
    console.print(render_hits(hits), highlight=False)


def render_hits(hits: list[Hit]) -> RenderableType:
    if not hits:
        return Text("no document matches")
    table = Table("#", "score", "document", "where", "text", show_lines=True)
    for column in table.columns[2:]:
        column.overflow = "fold"
    for n, hit in enumerate(hits, 1):
        text = " ".join(hit.text.split())
        table.add_row(
            str(n),
            f"{hit.score:.3f}",
            f"{hit.title}\n{hit.document_id} ({hit.kind})",
            hit.url or hit.path or "",
            text[:300] + ("..." if len(text) > 300 else ""),
        )
    return table


@app.command("ask")
def ask_command(
    question: str = typer.Argument(..., help="The question."),
    extractive: bool = typer.Option(
        False, "--extractive", help="Quote the closest sentences; no chat model."
    ),
    k: int | None = typer.Option(None, "--k", help="Sources to retrieve. Default: MLSTACK_RAG_K."),
    mode: Mode = typer.Option(Mode.hybrid, help="How to retrieve."),
    collection: str | None = COLLECTION,
    model: str | None = typer.Option(None, help="Chat model. Default: MLSTACK_LLM_MODEL."),
    as_json: bool = JSON,
) -> None:
    """Answer from a collection with numbered citations [1], [2], each a source's title and URL
    or path. OpenAI or any compatible server writes the answer (OPENAI_API_KEY, OPENAI_BASE_URL);
    without one the answer is extractive. A question nothing answers gets "I don't know"."""
    from flows.rag import RagAskParams, rag_ask_flow

    params = build(
        RagAskParams,
        question=question,
        extractive=extractive,
        k=k,
        mode=mode.value,
        collection=collection,
        model=model,
    )
    result = run_flow(rag_ask_flow, params)
    if as_json:
        print(
            json.dumps(
                {
                    "answer": result.answer,
                    "citations": [c.model_dump() for c in result.citations],
                    "mode": result.mode,
                    "removed_citations": result.removed_citations,
                    "note": result.note,
                }
            )
        )
        return
    console.print(render_answer(result), highlight=False)


def render_answer(result: RagAnswerResult) -> RenderableType:
    lines: list[RenderableType] = [Text(result.answer), Text("")]
    if result.note:
        lines.insert(0, Text(f"note: {result.note}", style="yellow"))
    for c in result.citations:
        lines.append(Text(f"[{c.n}] {c.title} - {c.url or c.path or c.document_id}"))
    return Group(*lines)


@app.command("eval")
def eval_command(
    questions: Path | None = typer.Option(
        None, help='JSON lines {"question": ..., "expected": [id, path or URL]}. Default: the shipped set.'
    ),
    collection: str | None = COLLECTION,
) -> None:
    """Score retrieval: hit@1, hit@5 and MRR@10 per mode, logged to MLflow; the last line is JSON."""
    from flows.rag import RagEvalParams, rag_evaluate_flow

    result = run_flow(rag_evaluate_flow, build(RagEvalParams, questions=questions, collection=collection))
    console.print(render_eval(result), highlight=False)
    print(result.model_dump_json())


def render_eval(result: RagEvalResult) -> RenderableType:
    table = Table("mode", "hit@1", "hit@5", "MRR@10", title=f"{result.collection}: {result.count} questions")
    for mode, values in result.metrics.items():
        spans = result.intervals.get(mode, {})
        table.add_row(
            mode,
            *(
                f"{values[m]:.2f}" + (f" ({spans[m][0]:.2f}-{spans[m][1]:.2f})" if m in spans else "")
                for m in ("hit_at_1", "hit_at_5", "mrr_at_10")
            ),
        )
    parts: list[RenderableType] = [table]
    if result.intervals:
        parts.append(Text("in brackets: 95% bootstrap intervals over the questions"))
    if result.refusals:
        said = {"unknown_rate_unanswerable": "unanswerable ones", "false_refusal_rate": "answerable ones"}
        shown = ", ".join(f"{said[k]} {v:.0%}" for k, v in result.refusals.items())
        parts.append(Text(f'"I don\'t know" on {shown}'))
    if result.answers:
        scored = ", ".join(
            f"{name.removesuffix('/mean')} {value:.0%}" for name, value in result.answers.items()
        )
        parts.append(Text(f"answers (mlflow.genai.evaluate, run {result.run_id}): {scored}"))
    if result.regression:
        parts.append(Text(f"regression: {result.regression}", style="bold red"))
    return Group(*parts)


@app.command("drop")
def drop_command(
    collection: str = typer.Argument(..., help="The collection to delete, with its documents and chunks."),
    source: list[str] = typer.Option(
        [],
        "--source",
        "-s",
        help="Delete only this source's documents (repeatable), as the refresh named it: KIND:LOCATION,"
        " e.g. a docs folder that moved. The refresh lists the sources it did not name.",
    ),
    yes: bool = typer.Option(False, "--yes", help="Do not ask."),
) -> None:
    """Delete a collection (to re-embed it with another model, say), or some of its sources."""
    from mlstack.rag import sources, store
    from mlstack.settings import get_settings

    # As a refresh names them, so `--source docs:./old` finds what `refresh --source docs:./old` wrote.
    named = [str(sources.parse_spec(s)) if ":" in s else s for s in source]
    what = f"the documents of {', '.join(named)} in" if named else "collection"
    if not yes and not typer.confirm(f"delete {what} {collection!r} and all their chunks?"):
        raise fail("nothing deleted")

    def waiting() -> None:
        console.print(f"a refresh of {collection} is running: waiting for it to end", highlight=False)

    if not named:
        dropped = store.drop(get_settings(), collection, waiting)
        console.print(f"dropped {collection}" if dropped else f"no collection {collection}", highlight=False)
        return
    for name, count in store.drop_sources(get_settings(), collection, named, waiting).items():
        console.print(
            f"dropped {count} documents of {name}" if count else f"{collection} has no documents of {name}",
            highlight=False,
        )
