"""The house rules, checked on the source: imports point down, the CLI stays small, the tests
mirror the code, and the install works from any package index."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

PACKAGES = ("mlstack", "flows", "models", "monitoring")
# Which top-level packages each layer must never import (the CLI package is the one exception
# under mlstack/: it turns options into a flow's parameters and renders the result).
FORBIDDEN = {"mlstack": {"flows", "models"}, "models": {"flows"}, "monitoring": {"flows"}}
CLI = PROJECT_ROOT / "mlstack" / "cli"


def sources(package: str) -> list[Path]:
    return sorted((PROJECT_ROOT / package).rglob("*.py"))


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every import in the file, inside functions too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def violations(package: str) -> list[str]:
    return [
        f"{path.relative_to(PROJECT_ROOT)}:{line} imports {name}"
        for path in sources(package)
        if not path.is_relative_to(CLI)
        for line, name in imported(path)
        if name in FORBIDDEN[package]
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_down(package: str) -> None:
    assert violations(package) == []


def test_the_import_walk_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from flows.data import data_flow\n    import models.lm.init\n")
    assert imported(bad) == [(2, "flows"), (3, "models")]


def long_functions(path: Path, limit: int = 60) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return [
        f"{path.name}:{node.lineno} {node.name} has {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > limit
    ]


def test_no_function_in_the_cli_is_longer_than_sixty_lines() -> None:
    assert [f for path in sorted(CLI.glob("*.py")) for f in long_functions(path)] == []


def test_the_length_check_counts_lines(tmp_path: Path) -> None:
    long = tmp_path / "long.py"
    long.write_text("def f():\n" + "    x = 1\n" * 60)
    assert long_functions(long) == ["long.py:1 f has 61 lines"]


def test_every_test_module_mirrors_a_module_of_the_code() -> None:
    """tests/a/b/test_c.py tests a/b/c.py (or the package a/b/c/); a newcomer finds one from the other."""
    # The house rules, dvc.yaml's pipeline, the workflows and worker images, and README.md's walk.
    project_wide = {"test_architecture.py", "test_dvc.py", "test_ci.py", "test_readme.py"}
    orphans = []
    for test in sorted((PROJECT_ROOT / "tests").rglob("test_*.py")):
        relative = test.relative_to(PROJECT_ROOT / "tests")
        if len(relative.parts) == 1 and relative.name in project_wide:
            continue
        target = PROJECT_ROOT / relative.parent / relative.name.removeprefix("test_")
        if not (target.is_file() or target.with_suffix("").is_dir()):
            orphans.append(str(relative))
    assert orphans == []


def test_constraints_carry_no_local_version_labels() -> None:
    """`torch==2.13.0+cpu` resolves only where that build is on the index; `torch==2.13.0`
    matches the public wheel and, where it is offered, the +cpu build too."""
    pins = [line for line in (PROJECT_ROOT / "constraints.txt").read_text().splitlines() if "==" in line]
    assert len(pins) > 100
    assert [pin for pin in pins if re.search(r"==[^;\s]*\+", pin)] == []


def test_package_data_names_files_that_exist() -> None:
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    for package, patterns in config["tool"]["setuptools"]["package-data"].items():
        for pattern in patterns:
            assert list((PROJECT_ROOT / package).glob(pattern)), f"{package}/{pattern} matches nothing"


def test_every_package_is_a_package() -> None:
    folders = {p.parent for package in PACKAGES for p in sources(package)}
    assert [str(f) for f in sorted(folders) if not (f / "__init__.py").is_file()] == []


def flows() -> list:
    """Every Prefect flow defined in flows/."""
    import importlib

    from prefect import Flow

    found = []
    for path in sorted((PROJECT_ROOT / "flows").glob("*.py")):
        module = importlib.import_module(f"flows.{path.stem}")
        found += [
            v for v in vars(module).values() if isinstance(v, Flow) and v.fn.__module__ == module.__name__
        ]
    return found


def test_every_flow_takes_one_parameters_model_and_prefect_builds_its_form() -> None:
    import inspect
    import typing

    from prefect.states import State
    from prefect.utilities.callables import parameter_schema
    from pydantic import BaseModel

    found = flows()
    assert len(found) >= 10
    for flow in found:
        name, *rest = inspect.signature(flow.fn).parameters
        assert not rest and name == "params", flow.name
        model = typing.get_type_hints(flow.fn)["params"]
        assert issubclass(model, BaseModel), flow.name
        schema = parameter_schema(flow.fn).model_dump()
        assert set(schema["definitions"][model.__name__]["properties"]) == set(model.model_fields), flow.name
        returned = typing.get_type_hints(flow.fn)["return"]
        results = [t for t in typing.get_args(returned) or [returned] if not issubclass(t, State)]
        assert len(results) == 1 and issubclass(results[0], BaseModel), flow.name
        assert results[0].__name__.endswith("Result"), flow.name


FIXTURE_PROBE = """
import pytest


def test_unmarked_with_a_service_fixture(pg_settings):
    pass


@pytest.mark.slow
def test_marked_with_a_service_fixture(pg_settings):
    pass
"""
START_PROBE = """
from mlstack import postgres


def test_unmarked_that_starts_postgres_itself():
    postgres.connect()
"""


def run_probe(tmp_path: Path, source: str, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest over one probe file outside tests/, with this suite's conftest as a plugin."""
    probe = tmp_path / "test_probe.py"
    probe.write_text(source)
    command = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider"]
    command += ["-c", str(PROJECT_ROOT / "pyproject.toml"), "--rootdir", str(PROJECT_ROOT)]
    # A temp root of its own: a new session in the shared /tmp/pytest-of-<user> would take group
    # and other access off it (pytest's rule), and the embedded Postgres of this session, running
    # as its own user, could no longer reach its data dir there.
    command += ["--basetemp", str(tmp_path / "probe-tmp"), *args, str(probe)]
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)


def test_an_unmarked_test_that_requests_a_service_fixture_stops_the_collection(tmp_path: Path) -> None:
    done = run_probe(tmp_path, FIXTURE_PROBE, "--collect-only", "-q")
    shown = done.stdout + done.stderr
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, shown
    refusal = shown[shown.index("are not marked slow") :]
    assert "::test_unmarked_with_a_service_fixture: pg_settings" in refusal
    assert "test_marked_with_a_service_fixture" not in refusal


def test_an_unmarked_test_that_starts_a_service_anyway_fails_naming_it(tmp_path: Path) -> None:
    done = run_probe(tmp_path, START_PROBE, "-q")
    shown = done.stdout + done.stderr
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, shown
    assert "test_unmarked_that_starts_postgres_itself starts the embedded Postgres: mark it" in shown


def test_no_request_of_the_suite_leaves_the_machine() -> None:
    """The conftest's proxy fence: an outside host is refused at once by the clients the stack
    uses (httpx under Prefect and openai, requests under apprise and MLflow); loopback is not."""
    import http.server
    import threading

    import httpx
    import requests

    # Both refusals come from the fence's loopback port, not from a name lookup of the host.
    with pytest.raises(httpx.ConnectError, match="Connection refused"):
        httpx.get("https://api.openai.com/v1/models", timeout=10)
    with pytest.raises(requests.exceptions.ProxyError, match=r"host='127\.0\.0\.1', port=9"):
        requests.get("https://hooks.slack.com/services/T/B/C", timeout=10)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        assert httpx.get(url, timeout=10).status_code == requests.get(url, timeout=10).status_code == 200
    finally:
        server.shutdown()
