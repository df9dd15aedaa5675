"""The `mlstack` executable: it chooses between the warm process and this process before any
heavy import, and `python -m mlstack.cli` is the same executable."""

from __future__ import annotations

import subprocess
import sys
import tomllib

from tests.conftest import PROJECT_ROOT


def test_the_executable_imports_nothing_heavy_before_it_chooses_where_to_run() -> None:
    script = (
        "import sys\n"
        "from mlstack.cli import warm\n"
        "import mlstack.cli.main\n"
        "origin = warm.remember_origin()\n"
        "assert warm.forward(['data', 'flow'], origin) is None\n"  # none runs for this environment
        "heavy = ('typer', 'rich', 'pydantic', 'prefect', 'mlstack.settings')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_console_script_and_python_m_run_the_same_main() -> None:
    scripts = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mlstack"] == "mlstack.cli.main:main"
    done = subprocess.run([sys.executable, "-m", "mlstack.cli", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "mlstack" in done.stdout
    assert subprocess.run([sys.executable, "-m", "mlstack.cli", "no-such-command"]).returncode == 2
