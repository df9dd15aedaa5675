"""The README's command walk runs as written: each command, read from README.md, in a shell of
its own on a fresh data dir, and then the machine-readable forms of the commands it used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlstack import postgres
from mlstack.settings import Settings, project_root
from tests.kill import command_env, mlstack, run

MARKER = "<!-- walk:"


def walk_commands(readme: str) -> list[str]:
    """The commands of the fenced block after the walk marker: comments, blank lines and the
    venv's activation (the test's PATH has it) left out."""
    block = readme[readme.index(MARKER) :].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    return [c for c in commands if not c.startswith("source ")]


def test_the_walk_is_found_and_is_the_loop() -> None:
    commands = walk_commands((project_root() / "README.md").read_text())
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
        for command in walk_commands((project_root() / "README.md").read_text()):
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
