"""One malformed record costs that record: every reader of Slack and GitHub records skips it,
names its file (or page), its record and the field with the rule, and reads the rest. Each case
of `hostile` raised or slipped through before: `text: 123`, `ts: "1e300"`, a user that is a name
and not an id, a title that is a number, a missing field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlstack.rag.defaults import SAMPLES
from mlstack.rag.sources import github, slack
from mlstack.settings import get_settings
from mlstack.sources.records import SlackMessage, problem
from tests.mlstack.sources import hostile
from tests.mlstack.sources.fakes import FakeGitHub, FakeSlack

SHIPPED_THREADS = 6  # what the shipped export reads into when nothing is spoiled


def _named(reason: str, field: str) -> bool:
    return reason.startswith(f"{field}:" if field else "not a JSON object") or (
        bool(field) and reason.startswith(f"{field}.")
    )


def _ids(cases: list[tuple[str, str, Any]]) -> list[str]:
    return [label for label, _, _ in cases]


@pytest.mark.parametrize(
    ("label", "field", "record"), hostile.SLACK_MESSAGES, ids=_ids(hostile.SLACK_MESSAGES)
)
def test_a_bad_slack_message_is_skipped_and_named(
    tmp_path: Path, label: str, field: str, record: Any
) -> None:
    export = Path(shutil.copytree(SAMPLES / "slack", tmp_path / "slack"))
    good = {"type": "message", "user": "U0MLS0001", "text": "still here", "ts": "1789900001.000100"}
    day = export / "general" / "2026-09-20.json"
    day.write_text(json.dumps([good, record]))
    read = slack.read_export(export, "slack:x")
    assert len(read.documents) == SHIPPED_THREADS + 1, label
    [skipped] = read.skipped
    assert skipped.where == f"{day} record 1" and _named(skipped.reason, field), skipped


@pytest.mark.parametrize(
    ("name", "cases"), [("users.json", hostile.SLACK_USERS), ("channels.json", hostile.SLACK_CHANNELS)]
)
def test_bad_users_and_channels_are_skipped_and_named(tmp_path: Path, name: str, cases: list) -> None:
    export = Path(shutil.copytree(SAMPLES / "slack", tmp_path / "slack"))
    listed = json.loads((export / name).read_text())
    (export / name).write_text(json.dumps(listed + [record for _, _, record in cases]))
    read = slack.read_export(export, "slack:x")
    assert len(read.documents) == SHIPPED_THREADS
    assert [s.where for s in read.skipped] == [
        f"{export / name} record {len(listed) + i}" for i in range(len(cases))
    ]
    assert all(_named(s.reason, field) for s, (_, field, _) in zip(read.skipped, cases, strict=True))
    if name == "users.json":  # the good users still resolve
        assert any(u.startswith("ana (") for d in read.documents for u in d.units)


def test_a_channel_named_like_a_path_reads_no_other_folder(tmp_path: Path) -> None:
    export = Path(shutil.copytree(SAMPLES / "slack", tmp_path / "slack"))
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "2026-09-20.json").write_text(json.dumps([{"user": "U1", "text": "private", "ts": "1.1"}]))
    channels = json.loads((export / "channels.json").read_text())
    (export / "channels.json").write_text(json.dumps([*channels, {"id": "C0X", "name": "../secret"}]))
    read = slack.read_export(export, "slack:x")
    assert not any("private" in d.text for d in read.documents)


@pytest.mark.parametrize(
    ("key", "cases"), [("issues", hostile.GITHUB_ISSUES), ("comments", hostile.GITHUB_COMMENTS)]
)
def test_bad_github_records_in_a_dump_are_skipped_and_named(tmp_path: Path, key: str, cases: list) -> None:
    data = json.loads((SAMPLES / "github.json").read_text())
    shipped = len(data["issues"])
    before = len(data[key])
    data[key] += [record for _, _, record in cases]
    dump = tmp_path / "dump.json"
    dump.write_text(json.dumps(data))
    read = github.read_dump(dump, "github:dump")
    assert len(read.documents) == shipped and read.complete
    assert [s.where for s in read.skipped] == [f"{dump} {key}[{before + i}]" for i in range(len(cases))]
    for skipped, (label, field, _) in zip(read.skipped, cases, strict=True):
        assert _named(skipped.reason, field), (label, skipped)


def test_the_apis_skip_and_name_bad_records_and_read_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_SOURCES_SLACK_TOKEN", "xoxb-test")
    monkeypatch.setenv("MLSTACK_SOURCES_GITHUB_TOKEN", "ghp_test")
    settings = get_settings()
    messages = [record for _, _, record in hostile.SLACK_MESSAGES]
    fake_slack = FakeSlack(extra=messages)
    read = slack.read_api(
        "C1", "slack:C1", settings, None, httpx.Client(transport=httpx.MockTransport(fake_slack))
    )
    assert {d.id for d in read.documents} == {"slack:C1:100.1", "slack:C1:200.1"}
    history = [s for s in read.skipped if "conversations.history" in s.where]
    assert len(history) == len(messages)
    assert all(_named(s.reason, f) for s, (_, f, _) in zip(history, hostile.SLACK_MESSAGES, strict=True))

    issues = [record for _, _, record in hostile.GITHUB_ISSUES]
    fake_github = FakeGitHub(extra=issues)
    read = github.read_api(
        "o/r", "github:o/r", settings, None, httpx.Client(transport=httpx.MockTransport(fake_github))
    )
    assert {d.id for d in read.documents} == {"github:o/r#1", "github:o/r#2"}
    assert len(read.skipped) == 1 + len(issues)  # the fake's own broken record, and these


def test_a_message_change_is_checked_inside_too() -> None:
    changed = {"ts": "1.1", "subtype": "message_changed", "message": {"ts": "1.1", "text": 5}}
    assert problem(SlackMessage, changed) == "message.text: Input should be a valid string (got 5)"
    assert problem(SlackMessage, {"ts": "1789380060.000200", "user": "U0MLS0001", "extra": [1]}) is None
