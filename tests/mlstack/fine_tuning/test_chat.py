"""Chat JSONL in OpenAI's format: the examples written from pairs, and each rule of the validator
on a crafted bad line, named with its file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mlstack.fine_tuning import DatasetError, chat
from tests.mlstack.fine_tuning.conftest import pair

GOOD = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "How do I run the demo?"},
        {"role": "assistant", "content": "Run `make demo`.", "weight": 1},
    ]
}


def write(tmp_path: Path, lines: list[object]) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def messages(*changes: dict) -> dict:
    return {"messages": [dict(m) for m in changes]}


BAD_LINES = [
    ("json", "{not json"),
    ("json", json.dumps([1, 2])),
    ("messages", {"messages": "How do I run the demo?"}),
    ("messages", {"messages": []}),
    ("unknown_key", {**GOOD, "metadata": {"a": 1}}),
    (
        "unknown_key",
        messages(GOOD["messages"][0], {"role": "user", "content": "q", "mood": "x"}, GOOD["messages"][2]),
    ),
    ("role", messages(GOOD["messages"][0], {"role": "human", "content": "q"}, GOOD["messages"][2])),
    # An object or an array where the role goes: a TypeError (unhashable) that stopped validation.
    ("role", messages(GOOD["messages"][0], {"role": {"name": "user"}, "content": "q"}, GOOD["messages"][2])),
    ("role", messages(GOOD["messages"][0], {"role": ["user"], "content": "q"}, GOOD["messages"][2])),
    ("content", messages(GOOD["messages"][0], {"role": "user"}, GOOD["messages"][2])),
    ("content", messages(GOOD["messages"][0], {"role": "user", "content": "  "}, GOOD["messages"][2])),
    (
        "weight",
        messages(
            GOOD["messages"][0], GOOD["messages"][1], {"role": "assistant", "content": "a", "weight": 2}
        ),
    ),
    (
        "weight",
        messages(GOOD["messages"][0], {"role": "user", "content": "q", "weight": 1}, GOOD["messages"][2]),
    ),
    ("no_assistant", messages(GOOD["messages"][0], GOOD["messages"][1])),
    # Accepted before: `True in (0, 1)` holds, and tool_calls was never looked at.
    (
        "weight",
        messages(
            GOOD["messages"][0], GOOD["messages"][1], {"role": "assistant", "content": "a", "weight": True}
        ),
    ),
    (
        "tool_calls",
        messages(GOOD["messages"][0], GOOD["messages"][1], {"role": "assistant", "tool_calls": "garbage"}),
    ),
    (
        "content_part",
        messages(GOOD["messages"][0], {"role": "user", "content": [{"type": "audio"}]}, GOOD["messages"][2]),
    ),
]


@pytest.mark.parametrize(("rule", "line"), BAD_LINES, ids=[f"{r}-{i}" for i, (r, _) in enumerate(BAD_LINES)])
def test_each_rule_names_the_file_the_line_and_the_rule(tmp_path: Path, rule: str, line: object) -> None:
    path = write(tmp_path, [GOOD, GOOD, line, GOOD])
    report = chat.validate(path, chat.estimate_counter(), 1000, min_examples=1)
    assert [(f.line, f.rule) for f in report.findings] == [(3, rule)]
    assert str(report.findings[0]).startswith(f"{path}:3: [{rule}]")
    with pytest.raises(DatasetError, match=rf"train.jsonl:3: \[{rule}\]"):
        report.raise_for_findings()


def test_too_long_and_too_few_are_found_with_the_counts(tmp_path: Path) -> None:
    long = messages(GOOD["messages"][0], {"role": "user", "content": "word " * 400}, GOOD["messages"][2])
    path = write(tmp_path, [GOOD, long])
    report = chat.validate(path, chat.estimate_counter(), 100, min_examples=10)
    assert [(f.line, f.rule) for f in report.findings] == [(2, "too_long"), (None, "min_examples")]
    assert "over the limit of 100" in report.findings[0].detail
    assert "2 example(s); at least 10" in report.findings[1].detail
    assert str(report.findings[1]) == f"{path}: [min_examples] 2 example(s); at least 10 needed"


def test_examples_from_pairs_are_valid_and_priced(tmp_path: Path) -> None:
    examples = [chat.example(pair(n), "Answer like a maintainer.") for n in range(12)]
    assert examples[0]["messages"][0] == {"role": "system", "content": "Answer like a maintainer."}
    assert [m["role"] for m in examples[0]["messages"]] == ["system", "user", "assistant"]
    path = tmp_path / "ok.jsonl"
    assert chat.write_jsonl(examples, path) == 12
    counter = chat.estimate_counter()
    report = chat.validate(path, counter, 1000, min_examples=10)
    assert report.ok and report.examples == 12
    assert report.tokens == [counter.count(e["messages"]) for e in examples]
    summary = report.summary(1000, epochs=3, price_per_million=3.0)
    assert summary["billed_tokens"] == 3 * sum(report.tokens)
    assert summary["estimated_cost_usd"] == round(summary["billed_tokens"] / 1e6 * 3.0, 4)
    assert chat.read_jsonl(path) == examples


def test_a_weight_zero_assistant_turn_is_allowed(tmp_path: Path) -> None:
    turn = messages(
        GOOD["messages"][0],
        GOOD["messages"][1],
        {"role": "assistant", "content": "A draft.", "weight": 0},
        {"role": "user", "content": "Better?"},
        GOOD["messages"][2],
    )
    assert chat.validate(write(tmp_path, [turn]), chat.estimate_counter(), 1000, 1).ok


def test_a_local_tokenizer_counts_the_chat_template(tiny_lm: Path) -> None:
    from transformers import AutoTokenizer

    from models.lm.lora import chat_template

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    counter = chat.template_counter(tokenizer, chat_template(tokenizer), "tiny")
    text = tokenizer.apply_chat_template(
        GOOD["messages"], chat_template=chat_template(tokenizer), tokenize=False
    )
    assert counter.exact and counter.count(GOOD["messages"]) == len(
        tokenizer.encode(text, add_special_tokens=False)
    )


def test_openai_tokens_are_estimated_when_tiktoken_has_no_cached_encoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # empty: tiktoken would download
    assert chat.tiktoken_counter() is None
    estimate = chat.estimate_counter()
    assert not estimate.exact
    # 3 to prime the reply, then 3 a message plus ceil(bytes / 4): 3 + (3 + 3) + (3 + 6) + (3 + 4)
    assert estimate.count(GOOD["messages"]) == 25


@given(st.lists(st.text(), min_size=1, max_size=4))
@example(["a line\u2028separator", "next\x85line", "form\x0cfeed", "cr\rlf"])
@settings(max_examples=150, deadline=None)
def test_json_lines_round_trip_any_text(contents: list[str]) -> None:
    """Written raw (ensure_ascii=False), U+2028 and its kin cut a record in two for a reader that
    used str.splitlines; the format's one separator is \\n."""
    import tempfile

    examples = [
        {"messages": [{"role": "user", "content": c}, {"role": "assistant", "content": c}]} for c in contents
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "train.jsonl"
        assert chat.write_jsonl(examples, path) == len(examples)
        assert chat.read_jsonl(path) == examples
        report = chat.validate(path, chat.estimate_counter(), 10**6, min_examples=1)
        assert report.examples == len(examples)
        assert [f.rule for f in report.findings if f.rule == "json"] == []


CALL = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "demo"}'}}
DOCUMENTED = [
    # Content parts, an image in the user's turn (vision fine-tuning), and a tool call.
    messages(
        GOOD["messages"][0],
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is on this chart?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/chart.png"}},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "Trips per hour."}]},
    ),
    messages(
        GOOD["messages"][0], GOOD["messages"][1], {"role": "assistant", "content": None, "tool_calls": [CALL]}
    ),
]


def test_openai_s_documented_schema_passes_and_the_local_backend_names_what_it_cannot_use(
    tmp_path: Path,
) -> None:
    """Content parts were refused for --backend openai, which documents them; the local trainer
    renders one string per message and calls no tools, so it refuses both, saying why."""
    path = write(tmp_path, [GOOD, *DOCUMENTED])
    assert chat.validate(path, chat.estimate_counter(), 1000, min_examples=1).findings == []
    local = chat.validate(path, chat.estimate_counter(), 1000, min_examples=1, backend="local")
    assert [(f.line, f.rule) for f in local.findings] == [
        (2, "content_part"),
        (2, "content_part"),
        (3, "tool_calls"),
    ]
    assert "the local models read a string" in local.findings[0].detail
    assert "the local models call no tools" in local.findings[2].detail
