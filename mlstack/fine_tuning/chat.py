"""Chat JSONL in OpenAI's fine-tuning format, and a validator of OpenAI's documented rules.

A line is `{"messages": [{"role": "system", ...}, {"role": "user", ...}, {"role": "assistant",
"content": ..., "weight": 1}]}`. The validator checks what OpenAI rejects or warns about
(the cookbook's "data preparation and analysis for chat model fine-tuning"): a line that is not
a JSON object, no `messages` list, keys it does not know, roles it does not know, missing or
empty content, `weight` other than 0 or 1 or off an assistant turn, no assistant turn, an
example over the token limit, and too few examples. Each finding names the file, the line and
the rule; nothing is submitted while there is one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlstack.fine_tuning import DatasetError
from mlstack.fine_tuning.pairs import Pair
from mlstack.io import json_lines, write_text

TOP_LEVEL_KEYS = frozenset({"messages", "tools", "functions", "parallel_tool_calls"})
MESSAGE_KEYS = frozenset({"role", "content", "name", "weight", "function_call", "tool_calls", "tool_call_id"})
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
RULES = {
    "json": "each line is one JSON object",
    "messages": "an example has a non-empty `messages` list of objects",
    "unknown_key": f"only the keys {sorted(TOP_LEVEL_KEYS)} and, in a message, {sorted(MESSAGE_KEYS)}",
    "role": f"role is one of {sorted(ROLES)}",
    "content": "a message's content is a non-empty string (an assistant turn may call a tool instead)",
    "weight": "weight is the integer 0 or 1, on assistant turns only",
    "content_part": "content parts are text parts, or image parts in user messages (openai backend)",
    "tool_calls": "tool_calls lists {id, type: function, function: {name, arguments}} (openai backend)",
    "no_assistant": "an example has at least one assistant turn to learn from",
    "too_long": "an example fits the token limit (longer ones are cut in training)",
    "min_examples": "a file has at least the minimum number of examples",
}


def example(pair: Pair, system: str, weight: int | None = None) -> dict[str, Any]:
    assistant: dict[str, Any] = {"role": "assistant", "content": pair.answer}
    if weight is not None:
        assistant["weight"] = weight
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": pair.question},
            assistant,
        ]
    }


def write_jsonl(examples: Iterable[dict[str, Any]], path: Path) -> int:
    lines = [json.dumps(e, ensure_ascii=False) + "\n" for e in examples]
    write_text("".join(lines), path)
    return len(lines)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in json_lines(path.read_text(encoding="utf-8")) if line.strip()]


@dataclass(frozen=True)
class Finding:
    file: str
    line: int | None  # None: about the whole file
    rule: str
    detail: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: [{self.rule}] {self.detail}"


# A token counter: messages -> tokens. `exact` says whether it is the trained model's own count.
@dataclass(frozen=True)
class Counter:
    name: str
    count: Callable[[list[dict[str, Any]]], int]
    exact: bool


def _openai_count(messages: list[dict[str, Any]], tokens: Callable[[str], int]) -> int:
    """OpenAI's documented chat overhead: 3 tokens a message and 3 to prime the reply."""
    return 3 + sum(3 + tokens(str(m.get("content") or "")) for m in messages)


def estimate_counter() -> Counter:
    """About 4 bytes a token, with OpenAI's per-message overhead."""
    return Counter(
        "estimate (4 bytes/token)",
        lambda messages: _openai_count(messages, lambda text: math.ceil(len(text.encode()) / 4)),
        exact=False,
    )


def tiktoken_counter(encoding_name: str = "o200k_base") -> Counter | None:
    """OpenAI's own tokenizer, when its encoding file is already on this machine (tiktoken
    downloads it otherwise, which a run here must not); None when it is not."""
    try:
        import tiktoken
    except ImportError:
        return None
    import hashlib
    import os
    import tempfile

    urls = {"o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"}
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR")
    cache = cache or os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if (
        encoding_name not in urls
        or not (Path(cache) / hashlib.sha1(urls[encoding_name].encode()).hexdigest()).is_file()
    ):
        return None
    encoding = tiktoken.get_encoding(encoding_name)
    return Counter(
        encoding_name, lambda messages: _openai_count(messages, lambda text: len(encoding.encode(text))), True
    )


def template_counter(tokenizer: Any, chat_template: str, name: str) -> Counter:
    """A local model's own count: the messages through its chat template, tokenized."""

    def count(messages: list[dict[str, Any]]) -> int:
        plain = [{"role": m.get("role"), "content": m.get("content") or ""} for m in messages]
        text = tokenizer.apply_chat_template(plain, chat_template=chat_template, tokenize=False)
        return len(tokenizer.encode(text, add_special_tokens=False))

    return Counter(name, count, exact=True)


@dataclass
class Report:
    file: str
    examples: int = 0
    findings: list[Finding] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    counter: str = ""
    exact: bool = False

    @property
    def ok(self) -> bool:
        return not self.findings

    def billed_tokens(self, limit: int, epochs: int) -> int:
        return sum(min(t, limit) for t in self.tokens) * epochs

    def summary(self, limit: int, epochs: int, price_per_million: float | None = None) -> dict[str, Any]:
        billed = self.billed_tokens(limit, epochs)
        out: dict[str, Any] = {
            "file": self.file,
            "examples": self.examples,
            "tokens": sum(self.tokens),
            "max_example_tokens": max(self.tokens, default=0),
            "counter": self.counter,
            "exact": self.exact,
            "epochs": epochs,
            "billed_tokens": billed,
            "findings": len(self.findings),
        }
        if price_per_million is not None:
            out["estimated_cost_usd"] = round(billed / 1e6 * price_per_million, 4)
        return out

    def raise_for_findings(self, shown: int = 20) -> None:
        if self.findings:
            lines = [str(f) for f in self.findings[:shown]]
            more = len(self.findings) - shown
            if more > 0:
                lines.append(f"... and {more} more")
            raise DatasetError(f"{len(self.findings)} problem(s) in {self.file}:\n" + "\n".join(lines))


def _check_message(message: Any, where: Callable[[str, str], Finding], backend: str) -> list[Finding]:
    if not isinstance(message, dict):
        return [where("messages", f"a message is {type(message).__name__}, not an object")]
    found = []
    unknown = sorted(set(message) - MESSAGE_KEYS)
    if unknown:
        found.append(where("unknown_key", f"message keys {unknown} are not in OpenAI's format"))
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:  # an object or a list is not hashable
        found.append(where("role", f"role {role!r} is not one of {sorted(ROLES)}"))
    content = message.get("content")
    calls = message.get("tool_calls") or message.get("function_call")
    if "tool_calls" in message:
        found += _check_tool_calls(message["tool_calls"], where, backend)
    if role == "assistant" and calls and content is None:
        pass
    elif isinstance(content, list) and content:
        found += _check_parts(content, role, where, backend)
    elif not isinstance(content, str) or not content.strip():
        what = (
            "missing"
            if content is None
            else "empty"
            if isinstance(content, str | list)
            else type(content).__name__
        )
        found.append(where("content", f"{role or 'a'} message's content is {what}"))
    weight = message.get("weight")
    # `True in (0, 1)` holds in Python; OpenAI's weight is the integer 0 or 1.
    if "weight" in message and (role != "assistant" or type(weight) is not int or weight not in (0, 1)):
        found.append(where("weight", f"weight {weight!r} on a {role!r} message"))
    return found


def _check_parts(
    parts: list[Any], role: Any, where: Callable[[str, str], Finding], backend: str
) -> list[Finding]:
    """Content parts, as OpenAI documents them: text parts, and image parts in user messages."""
    if backend != "openai":  # the local chat template renders a string per message
        return [
            where("content_part", "content parts are for --backend openai; the local models read a string")
        ]
    found = []
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str) and part["text"].strip():
            continue
        image = part.get("image_url") if kind == "image_url" else None
        if (
            kind == "image_url"
            and role == "user"
            and isinstance(image, dict)
            and isinstance(image.get("url"), str)
        ):
            continue
        found.append(
            where("content_part", f"content part {json.dumps(part)[:80]} is not a text or a user image part")
        )
    return found


def _check_tool_calls(calls: Any, where: Callable[[str, str], Finding], backend: str) -> list[Finding]:
    if backend != "openai":
        return [where("tool_calls", "tool calls are for --backend openai; the local models call no tools")]
    shaped = (
        isinstance(calls, list)
        and calls
        and all(
            isinstance(c, dict)
            and isinstance(c.get("id"), str)
            and c.get("type") == "function"
            and isinstance(c.get("function"), dict)
            and isinstance(c["function"].get("name"), str)
            and isinstance(c["function"].get("arguments"), str)
            for c in calls
        )
    )
    if shaped:
        return []
    return [where("tool_calls", f"tool_calls {json.dumps(calls)[:80]} is not a list of function calls")]


def validate(
    path: Path,
    counter: Counter,
    max_tokens: int,
    min_examples: int,
    label: str | None = None,
    backend: str = "openai",
) -> Report:
    """Every finding in the file, not only the first; token counts of the examples that parse.
    OpenAI's documented schema for `openai`; the local backend refuses what its trainer cannot
    use (content parts, tool calls), naming the reason."""
    label = label or str(path)
    report = Report(label, counter=counter.name, exact=counter.exact)
    try:
        lines = json_lines(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        report.findings.append(Finding(label, None, "json", f"unreadable: {exc}"))
        return report
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        report.examples += 1

        def where(rule: str, detail: str, number: int = number) -> Finding:
            return Finding(label, number, rule, detail)

        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            report.findings.append(where("json", f"not JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(data, dict):
            report.findings.append(where("json", f"a {type(data).__name__}, not an object"))
            continue
        unknown = sorted(set(data) - TOP_LEVEL_KEYS)
        if unknown:
            report.findings.append(where("unknown_key", f"keys {unknown} are not in OpenAI's format"))
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            report.findings.append(where("messages", "no `messages` list"))
            continue
        found = [f for m in messages for f in _check_message(m, where, backend)]
        report.findings += found
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
            report.findings.append(where("no_assistant", "no assistant message to learn from"))
        if not found:
            tokens = counter.count(messages)
            report.tokens.append(tokens)
            if tokens > max_tokens:
                report.findings.append(
                    where("too_long", f"{tokens:,} tokens ({counter.name}) over the limit of {max_tokens:,}")
                )
    if report.examples < min_examples:
        report.findings.append(
            Finding(
                label, None, "min_examples", f"{report.examples} example(s); at least {min_examples} needed"
            )
        )
    return report
