"""The prompt's output rules, checked on every answer: sentence count, number of links, and
whether every link is a well-formed URL; and the same rules as MLflow GenAI scorers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

MAX_SENTENCES = 2
LINKS_WANTED = 2

_MARKDOWN_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]*)\)")
_URL_LIKE = re.compile(r"(?:\b[a-z][a-z0-9+.-]*://|\bwww\.)[^\s<>\"'`]+", re.IGNORECASE)
_HOST = re.compile(r"^(localhost|([a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,})$", re.IGNORECASE)
_TRAILING = ".,;:!?)]}"
_LIST_MARKER = re.compile(r"^(?:[-*•]|\d+[.)])\s+")
_ABBREVIATIONS = re.compile(r"\b(e\.g|i\.e|etc|vs|cf|approx|Dr|Mr|Mrs|Ms)\.", re.IGNORECASE)


def well_formed(url: str) -> bool:
    """An absolute http(s) URL with a plausible host name and no spaces."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(_HOST.match(host)) and not re.search(r"\s", url)


@dataclass(frozen=True)
class AnswerChecks:
    sentences: int
    links: list[str]
    malformed_links: list[str]

    @property
    def sentences_ok(self) -> bool:
        return 1 <= self.sentences <= MAX_SENTENCES

    @property
    def links_ok(self) -> bool:
        return len(self.links) == LINKS_WANTED

    @property
    def links_well_formed(self) -> bool:
        return bool(self.links) and not self.malformed_links

    @property
    def passed(self) -> bool:
        return self.sentences_ok and self.links_ok and self.links_well_formed

    def failures(self) -> list[str]:
        failed = []
        if not self.sentences_ok:
            failed.append(f"{self.sentences} sentences, wanted 1 to {MAX_SENTENCES}")
        if not self.links_ok:
            failed.append(f"{len(self.links)} links, wanted {LINKS_WANTED}")
        if not self.links_well_formed:
            bad = ", ".join(self.malformed_links) if self.malformed_links else "no links at all"
            failed.append(f"links not well-formed: {bad}")
        return failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "sentences": self.sentences,
            "links": len(self.links),
            "links_well_formed": self.links_well_formed,
            "sentences_ok": self.sentences_ok,
            "links_ok": self.links_ok,
            "passed": self.passed,
            "link_urls": self.links,
            "malformed_links": self.malformed_links,
        }


def _keep_trailing(match: re.Match[str]) -> str:
    """A URL drops out of the prose, but the full stop after it still ends a sentence."""
    url = match.group(0)
    return " " + url[len(url.rstrip(_TRAILING)) :]


def check_answer(text: str) -> AnswerChecks:
    """Count the answer's sentences (link lists and 'Further reading:' lines aside) and judge its links."""
    links: list[str] = []
    kept: list[str] = []
    for raw in text.splitlines():
        line = _LIST_MARKER.sub("", raw.strip())
        links += [target for _, target in _MARKDOWN_LINK.findall(line)]
        bare = _MARKDOWN_LINK.sub(" ", line)
        links += [url.rstrip(_TRAILING) for url in _URL_LIKE.findall(bare)]
        words = _URL_LIKE.sub(_keep_trailing, bare).strip()
        # A line of links only, or a heading such as "Further reading:", is not a sentence.
        if re.search(r"[A-Za-z]", words) and not words.endswith(":"):
            kept.append(_URL_LIKE.sub(_keep_trailing, _MARKDOWN_LINK.sub(lambda m: m.group(1), line)))
    prose = _ABBREVIATIONS.sub(lambda m: m.group(1), " ".join(kept))
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", prose) if re.search(r"[A-Za-z]", s)]
    return AnswerChecks(len(sentences), links, [url for url in links if not well_formed(url)])


def _answer_text(outputs: Any) -> str:
    """The answer in a trace's outputs (the `ask_in_context` span's) or a plain string."""
    if isinstance(outputs, dict):
        outputs = outputs.get("answer")
    return "" if outputs is None else str(outputs)


def answer_scorers() -> list[Any]:
    """The answer checks as MLflow GenAI scorers: `mlflow.genai.evaluate` attaches their verdicts,
    with a rationale, to each answer's trace, and their means to the run, so the evaluation view
    compares prompt versions side by side. The rules stay in `check_answer`."""
    from mlflow.entities import Feedback
    from mlflow.genai.scorers import scorer

    @scorer(name="sentences_ok")
    def sentences_ok(outputs: Any) -> Feedback:
        checks = check_answer(_answer_text(outputs))
        return Feedback(
            value=checks.sentences_ok, rationale=f"{checks.sentences} sentences, wanted 1 to {MAX_SENTENCES}"
        )

    @scorer(name="links_ok")
    def links_ok(outputs: Any) -> Feedback:
        checks = check_answer(_answer_text(outputs))
        return Feedback(value=checks.links_ok, rationale=f"{len(checks.links)} links, wanted {LINKS_WANTED}")

    @scorer(name="links_well_formed")
    def links_well_formed(outputs: Any) -> Feedback:
        checks = check_answer(_answer_text(outputs))
        bad = ", ".join(checks.malformed_links) or ("none" if checks.links else "no links at all")
        return Feedback(value=checks.links_well_formed, rationale=f"malformed: {bad}")

    @scorer(name="passed")
    def passed(outputs: Any) -> Feedback:
        checks = check_answer(_answer_text(outputs))
        return Feedback(value=checks.passed, rationale="; ".join(checks.failures()) or "every check passed")

    return [sentences_ok, links_ok, links_well_formed, passed]


def evaluate_traces(run_id: str) -> dict[str, float]:
    """Run the answer scorers over the traces of `run_id` with `mlflow.genai.evaluate`, logging into
    that run; returns its metrics (`passed/mean`, ...). Quiet: the command's stdout may be JSON."""
    import contextlib
    import io

    import mlflow

    traces = mlflow.search_traces(run_id=run_id, flush=True)  # traces are exported asynchronously
    if traces.empty:
        return {}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        result = mlflow.genai.evaluate(data=traces, scorers=answer_scorers())
    return {name: float(value) for name, value in result.metrics.items()}
