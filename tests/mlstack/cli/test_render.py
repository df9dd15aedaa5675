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
    fail("run `pip install -e '.[llm]'` for /data/[2026]/x")  # brackets are text, not markup
    assert capsys.readouterr().err.strip() == "error: run `pip install -e '.[llm]'` for /data/[2026]/x"


def test_off_a_terminal_a_long_path_stays_on_one_line() -> None:
    """A pipe or a log file has no width: rich's 80 columns folded the paths people copy."""
    import os
    import subprocess
    import sys

    path = "/data/" + "/".join(f"folder-{n}" for n in range(20)) + "/validation.html"
    code = f"from mlstack.cli.render import console; console.print({path!r})"
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    printed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert len(path) > 200 and printed.stdout == path + "\n"
