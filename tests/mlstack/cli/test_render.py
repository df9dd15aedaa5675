"""A result printed for people, or with --json as one JSON object for machines."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from mlstack.cli.render import fail, show


class Result(BaseModel):
    path: str
    rows: int


def test_json_prints_the_model_as_it_is(capsys: pytest.CaptureFixture) -> None:
    show(Result(path="/tmp/[x]", rows=3), lambda r: "unused", as_json=True)
    assert json.loads(capsys.readouterr().out) == {"path": "/tmp/[x]", "rows": 3}


def test_a_string_is_printed_as_text_not_markup(capsys: pytest.CaptureFixture) -> None:
    show(Result(path="/tmp/[bold]x[/bold]", rows=3), lambda r: f"{r.rows} rows in {r.path}", as_json=False)
    assert capsys.readouterr().out.strip() == "3 rows in /tmp/[bold]x[/bold]"


def test_fail_prints_one_line_and_returns_the_exit(capsys: pytest.CaptureFixture) -> None:
    done = fail("no such file: /x", code=2)
    assert done.exit_code == 2 and capsys.readouterr().err.strip() == "error: no such file: /x"
