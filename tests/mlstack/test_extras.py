"""The default install runs the classic loop without the llm extra; a command that needs a
missing extra says which one and how to install it, in one line. pyproject.toml's extras and
`mlstack.extras` name the same modules.

"Without the extra" is this test environment with the extra's modules made unimportable: a
sitecustomize put first on the path of each command, which Python runs before anything else.
"""

from __future__ import annotations

import os
import sys
import tomllib
from importlib.metadata import distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from mlstack import extras
from tests.conftest import PROJECT_ROOT
from tests.kill import command_env, mlstack, run

BLOCKER = """
import sys

BLOCKED = {blocked!r}


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, Blocker())
"""


def without(extra: str, tmp_path: Path) -> dict[str, str]:
    """A command environment in which the extra's modules cannot be imported."""
    folder = tmp_path / f"without-{extra}"
    folder.mkdir()
    blocked = sorted(m for m, owner in extras.MODULES.items() if owner == extra)
    (folder / "sitecustomize.py").write_text(BLOCKER.format(blocked=set(blocked)))
    env = command_env(tmp_path / "home")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), env.get("PYTHONPATH", "")]))
    return env


def top_level_modules(package: str) -> set[str]:
    """The importable top-level names an installed package's files hold."""
    tops = {f.parts[0].removesuffix(".py") for f in distribution(package).files or []}
    return {t for t in tops if t.isidentifier() and t != "__pycache__"}


# gpu's one package (nvidia-ml-py) is not part of the test install, so only its map is read.
@pytest.mark.parametrize("extra", ["llm", "dask"])
def test_pyproject_and_the_module_map_name_the_same_extras(extra: str) -> None:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    packages = {Requirement(r).name for r in project["optional-dependencies"][extra]}
    assert not packages & {Requirement(r).name for r in project["dependencies"]}
    mapped = {module for module, owner in extras.MODULES.items() if owner == extra}
    brought = {package: top_level_modules(package) & mapped for package in packages}
    assert all(brought.values()), f"packages of {extra} that no mapped module stands for: {brought}"
    assert set().union(*brought.values()) == mapped


def test_the_classic_loop_needs_no_llm_extra(tmp_path: Path) -> None:
    env = without("llm", tmp_path)
    raw, validated = tmp_path / "raw", tmp_path / "validated"
    generated = run(
        mlstack("data", "generate", "--out", str(raw), "--days", "3", "--trips-per-day", "200"), env
    )
    assert generated.returncode == 0, generated.stderr[-2000:]
    checked = run(mlstack("data", "validate", str(raw), "--out", str(validated)), env)
    assert checked.returncode == 0, checked.stderr[-2000:]
    # Every classic flow and the serving app import, and no llm module did.
    modules = (
        "flows.data flows.features flows.training flows.batch_inference flows.monitoring flows.retraining"
    )
    code = f"import {', '.join([*modules.split(), 'models.serving.app', 'mlstack.cli'])}; import sys; "
    code += f"print(sorted(set(sys.modules) & {set(extras.MODULES)!r}))"
    imported = run([sys.executable, "-c", code], env)
    assert imported.returncode == 0 and imported.stdout.strip() == "[]", imported.stderr[-2000:]


def test_a_command_that_needs_a_missing_extra_says_which_in_one_line(tmp_path: Path) -> None:
    env = without("llm", tmp_path)
    demo = run(mlstack("demo", "--days", "3"), env)
    assert demo.returncode == 1
    assert demo.stderr.strip().splitlines()[-1] == f"error: {extras.message('llm')}"
    assert "pip install -e '.[llm]'" in demo.stderr and "Traceback" not in demo.stderr
    assert not (tmp_path / "home" / "stack").exists(), "the demo started services before refusing"
    served = run(mlstack("serve-llm", "--port", "1"), env)
    assert served.returncode == 1 and served.stderr.strip().endswith(extras.message("llm")), served.stderr
