"""The docs hold: every relative link in README.md and docs/ leads to a file, every `mlstack`
command they show is one `--help` knows (with its options), and the classic loop's walk in
docs/classic-ml.md runs as written: each command in a shell of its own on a fresh data dir, and
then the machine-readable forms of the commands it used."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from mlstack import postgres
from mlstack.settings import Settings, project_root
from tests.kill import command_env, mlstack, run

MARKER = "<!-- walk:"
WALK = project_root() / "docs" / "classic-ml.md"
PAGES = [project_root() / "README.md", *sorted((project_root() / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"```(?:bash|sh|console)?\n(.*?)```", re.S)
INLINE = re.compile(r"`(mlstack [^`]+)`")


def walk_commands(readme: str) -> list[str]:
    """The commands of the fenced block after the walk marker: comments, blank lines and the
    venv's activation (the test's PATH has it) left out."""
    block = readme[readme.index(MARKER) :].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    return [c for c in commands if not c.startswith("source ")]


def broken_links(page: Path) -> list[str]:
    """Relative links of a page whose file does not exist (anchors and web addresses left out)."""
    found = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            found.append(f"{page.name}: {target}")
    return found


def test_every_relative_link_leads_to_a_file() -> None:
    assert [link for page in PAGES for link in broken_links(page)] == []


def test_the_link_check_sees_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("x")
    page.write_text("[ok](there.md) [web](https://x.org/a) [gone](docs/gone.md#part) [anchor](#top)")
    assert broken_links(page) == ["page.md: docs/gone.md#part"]


def documented_commands(text: str) -> list[str]:
    """Every `mlstack ...` command in the text's shell blocks and inline code."""
    lines = [line for block in FENCE.findall(text) for line in block.splitlines()]
    lines += INLINE.findall(text)
    commands = []
    for line in lines:
        line = re.split(r"\s#\s", line, maxsplit=1)[0]
        for part in re.split(r"&&|\|\||;|\|", line):
            part = part.strip()
            if part.startswith("mlstack ") or part == "mlstack":
                commands.append(part)
    return commands


def unknown_to_help(command: str) -> str | None:
    """Why `--help` would not know the command (a subcommand or an option it lacks), or None."""
    import typer

    from mlstack.cli import app

    current = typer.main.get_command(app)
    words = shlex.split(command)[1:]
    # A group lists commands (Typer builds on its own copy of click, so no isinstance check).
    while hasattr(current, "list_commands") and words and not words[0].startswith("-"):
        found = current.get_command(typer.Context(current), words[0])
        if found is None:
            return f"{command}: no command {words[0]!r}"
        current, words = found, words[1:]
    known = {"--help"} | {opt for param in current.params for opt in (*param.opts, *param.secondary_opts)}
    for word in words:
        flag = word.split("=", 1)[0]
        if flag.startswith("-") and flag not in known:
            return f"{command}: no option {flag}"
    return None


def test_every_documented_command_is_one_help_knows() -> None:
    commands = [c for page in PAGES for c in documented_commands(page.read_text())]
    assert len(commands) > 50
    assert [why for c in commands if (why := unknown_to_help(c))] == []


def test_the_command_check_sees_an_unknown_command_and_option() -> None:
    text = "```bash\nmlstack train --trials 2 --bogus  # comment\nmlstack nope && mlstack rag ask q\n```"
    assert documented_commands(text + " and `mlstack model status`") == [
        "mlstack train --trials 2 --bogus",
        "mlstack nope",
        "mlstack rag ask q",
        "mlstack model status",
    ]
    assert (
        unknown_to_help("mlstack train --trials 2 --bogus")
        == "mlstack train --trials 2 --bogus: no option --bogus"
    )
    assert unknown_to_help("mlstack nope") == "mlstack nope: no command 'nope'"
    assert unknown_to_help("mlstack train --no-promote --json") is None


def test_the_walk_is_found_and_is_the_loop() -> None:
    commands = walk_commands(WALK.read_text())
    joined = "\n".join(commands)
    for step in ("data flow", "features apply", "features materialize", "train", "predict-batch", "monitor"):
        assert f"mlstack {step}" in joined, step
    assert all(c.startswith("mlstack ") for c in commands), commands


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_readme_walk_runs_as_written(prefect_harness, tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    home = tmp_path / "home"
    # One Prefect API for the whole walk, as `mlstack up` gives a user: the session's own. Left
    # unset, each of its commands would start a temporary one (10-14 s each on 2 cores); the
    # demo's test and tests/mlstack/cli/test_render.py keep that path covered.
    env = command_env(home, PREFECT_API_URL=PREFECT_API_URL.value())
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    outputs = {}
    try:
        for command in walk_commands(WALK.read_text()):
            done = subprocess.run(
                ["bash", "-c", command], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900
            )
            assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
            outputs[command] = done.stdout
        monitors = [c for c in outputs if c.startswith("mlstack monitor")]
        assert "no drift" in outputs[monitors[0]], outputs[monitors[0]]
        assert "drift detected" in outputs[monitors[1]] and "exit 3: drift" in outputs[monitors[1]]
        assert "window skipped" not in "".join(outputs[m] for m in monitors)

        # The same commands for machines: one JSON object each, and exit codes a script can use.
        status = run(mlstack("model", "status", "--json"), env)
        assert status.returncode == 0, status.stderr
        champion = json.loads(status.stdout)["champion"]
        # A rerun rescores the normal day with today's champion, so monitoring judges it again.
        batch = run(mlstack("predict-batch", "--start", "2026-09-08", "--end", "2026-09-09", "--json"), env)
        assert batch.returncode == 0, batch.stderr
        scored = json.loads(batch.stdout)
        assert scored["rows"] > 0 and scored["model_versions"] == [champion]
        window = ("--window-start", "2026-09-08", "--window-end", "2026-09-09")
        judged = run(mlstack("monitor", *window, "--exit-code", "--json"), env)
        verdict = json.loads(judged.stdout)
        assert verdict["version"] == champion and verdict["status"] in ("ok", "drift"), verdict
        assert judged.returncode == (3 if verdict["status"] == "drift" else 0), judged.stderr
        # A training for machines, that must not promote: the champion stays whatever it wins.
        trained = run(mlstack("train", "--trials", "1", "--no-promote", "--json"), env)
        assert trained.returncode == 0, trained.stderr
        challenger = json.loads(trained.stdout)
        assert challenger["promoted"] is False and int(challenger["version"]) > int(champion)
        assert json.loads(run(mlstack("model", "status", "--json"), env).stdout)["champion"] == champion

        # Every judged window is one point in the Evidently workspace, at the window's end.
        shown = run(mlstack("drift-history", "--json"), env)
        windows = json.loads(shown.stdout)["windows"]
        assert [w["end"][:10] for w in windows] == ["2026-09-09", "2026-09-12"], windows
        assert windows[1]["drifted_share"] > windows[0]["drifted_share"]
        assert all(w["rows"] > 0 and w["mae"] > 0 for w in windows)
        info = run(mlstack("info", "--json"), env)
        assert info.returncode == 0 and json.loads(info.stdout)["ok"] is True
    finally:  # the commands leave the embedded Postgres up for the next: this test has no next
        postgres.stop_embedded(Settings(home=home).pg_dir)
