"""The house rules, checked on the source: each capability under one name in its four homes,
imports that point down, a CLI that stays small, tests that mirror the code, and an install that
works from any package index."""

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
# under mlstack/: it turns options into a flow's parameters and renders the result). Blocks
# (mlstack/) import nothing of ours above them; models and monitoring import blocks only.
FORBIDDEN = {
    "mlstack": {"flows", "models", "monitoring"},
    "models": {"flows", "monitoring"},
    "monitoring": {"flows", "models"},
    "flows": set(),
}
CLI = PROJECT_ROOT / "mlstack" / "cli"

# Each capability under one name in its four homes: flows/<name>.py (or flows/<name>/ when it
# holds several flows), its building blocks (mlstack/<name>/, mlstack/<name>.py, or the model
# code in models/<kind>/), its command group mlstack/cli/<name>.py, and tests mirroring each.
# None: a home the capability has no use for, with the reason beside it. The commands users
# type keep their own names (`mlstack pretrain`, `finetune`, `predict-batch`, ...).
CAPABILITIES: dict[str, tuple[str | None, str | None, str]] = {
    "data": ("flows/data.py", "mlstack/data", "mlstack/cli/data.py"),
    "features": ("flows/features.py", "mlstack/features.py", "mlstack/cli/features.py"),
    "training": ("flows/training.py", "models/tabular", "mlstack/cli/training.py"),
    "batch_inference": ("flows/batch_inference.py", "models/tabular", "mlstack/cli/batch_inference.py"),
    "serving": (None, "models/serving", "mlstack/cli/serving.py"),  # long-running servers, not runs
    "monitoring": ("flows/monitoring.py", "monitoring", "mlstack/cli/monitoring.py"),
    "retraining": ("flows/retraining.py", "models/tabular", "mlstack/cli/retraining.py"),
    "prompt_engineering": (
        "flows/prompt_engineering.py",
        "mlstack/prompt_engineering",
        "mlstack/cli/prompt_engineering.py",
    ),
    "rag": ("flows/rag.py", "mlstack/rag", "mlstack/cli/rag.py"),
    "pretraining": ("flows/pretraining", "mlstack/pretraining", "mlstack/cli/pretraining.py"),
    "fine_tuning": ("flows/fine_tuning", "mlstack/fine_tuning", "mlstack/cli/fine_tuning.py"),
    "deploy": (None, "mlstack/deploy", "mlstack/cli/deploy.py"),  # runs `prefect deploy`, no flow
    "demo": ("flows/demo.py", None, "mlstack/cli/demo.py"),  # composes the other flows, no blocks
    # A long-running receiver, not runs: the refresh its events start is rag's rag-update flow.
    "webhooks": (None, "mlstack/webhooks", "mlstack/cli/webhooks.py"),
    # Generates a project (`mlstack new`) rather than running one: the template is its blocks' data.
    "scaffold": (None, "mlstack/scaffold", "mlstack/cli/scaffold.py"),
}
# Modules the CLI keeps beside the command groups, and flows/ beside the capabilities.
CLI_SHARED = {
    "__init__.py",
    "__main__.py",
    "main.py",
    "root.py",
    "render.py",
    "options.py",
    "running.py",
    "warm.py",
}
FLOWS_SHARED = {"__init__.py", "tasks"}
# Modules without a mirrored test of their own yet. The list only shrinks: a module that gains a
# test, or goes, must leave it; a new module comes with its test.
UNTESTED = {
    "flows/features.py",
    "flows/tasks/runners.py",
    "flows/tasks/tabular.py",
    "flows/training.py",
    "mlstack/data/config.py",
    "mlstack/data/predictions.py",
    "mlstack/data/schemas.py",
    "mlstack/params.py",
    "mlstack/prompt_engineering/report.py",
    "mlstack/rag/defaults.py",
    "models/lm/checkpoint.py",
    "models/serving/metrics.py",
    "models/tabular/evaluate.py",
}


def sources(package: str) -> list[Path]:
    return sorted((PROJECT_ROOT / package).rglob("*.py"))


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in the file, inside functions and TYPE_CHECKING too; a
    `from a import b` counts as a.b as well, since b may be a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every import in the file, inside functions too."""
    return list(dict.fromkeys((line, name.split(".")[0]) for line, name in imported_modules(path)))


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


def cli_importers() -> list[str]:
    """Modules below the CLI that import it: the CLI is the top, nothing reaches up into it."""
    return [
        f"{path.relative_to(PROJECT_ROOT)}:{line} imports {name}"
        for package in PACKAGES
        for path in sources(package)
        if not path.is_relative_to(CLI)
        for line, name in imported_modules(path)
        if name == "mlstack.cli" or name.startswith("mlstack.cli.")
    ]


def test_nothing_below_the_cli_imports_it() -> None:
    assert cli_importers() == []


def test_the_import_walk_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f():\n    from flows.data import data_flow\n    import models.lm.init\n"
        "    from mlstack import cli\n    import monitoring.drift\n"
    )
    assert imported(bad) == [(2, "flows"), (3, "models"), (4, "mlstack"), (5, "monitoring")]
    assert (4, "mlstack.cli") in imported_modules(bad)
    module = PROJECT_ROOT / "mlstack" / "zz_probe_violation.py"
    module.write_text(bad.read_text())
    try:  # the rules themselves catch it, not only the walk
        assert any("zz_probe_violation.py:5 imports monitoring" in v for v in violations("mlstack"))
        assert any("zz_probe_violation.py:4 imports mlstack.cli" in v for v in cli_importers())
    finally:
        module.unlink()


def homes(capability: str) -> list[Path]:
    return [PROJECT_ROOT / home for home in CAPABILITIES[capability] if home is not None]


def mirrored_test(home: Path) -> Path:
    """The test of a module (tests/a/test_b.py) or the test folder of a package (tests/a/b/)."""
    relative = home.relative_to(PROJECT_ROOT)
    if home.suffix == ".py":
        return PROJECT_ROOT / "tests" / relative.parent / f"test_{relative.name}"
    if relative.parts[0] == "flows":  # a flows/ package's end-to-end test is tests/flows/test_<name>.py
        return PROJECT_ROOT / "tests" / relative.parent / f"test_{relative.name}.py"
    return PROJECT_ROOT / "tests" / relative


def capability_problems() -> list[str]:
    problems = []
    for capability, (flow, blocks, cli) in CAPABILITIES.items():
        if flow is not None and Path(flow).stem != capability:
            problems.append(f"{capability}: its flow home {flow} has another name")
        if cli != f"mlstack/cli/{capability}.py":
            problems.append(f"{capability}: its command group is {cli}, not mlstack/cli/{capability}.py")
        if blocks is not None and not blocks.startswith("models/") and Path(blocks).stem != capability:
            problems.append(f"{capability}: its blocks {blocks} have another name")
        for home in homes(capability):
            if not home.exists():
                problems.append(f"{capability}: {home.relative_to(PROJECT_ROOT)} is missing")
            elif not mirrored_test(home).exists() and str(home.relative_to(PROJECT_ROOT)) not in UNTESTED:
                problems.append(f"{capability}: {home.relative_to(PROJECT_ROOT)} has no mirrored test")
    listed_flows = {Path(f).name for f, _, _ in CAPABILITIES.values() if f}
    listed_cli = {Path(c).name for _, _, c in CAPABILITIES.values()}
    for item in sorted((PROJECT_ROOT / "flows").iterdir()):
        ours = item.suffix == ".py" or (item.is_dir() and item.name != "__pycache__")
        if ours and item.name not in listed_flows | FLOWS_SHARED:
            problems.append(f"flows/{item.name}: no capability in the table names it")
    for item in sorted(CLI.glob("*.py")):
        if item.name not in listed_cli | CLI_SHARED:
            problems.append(f"mlstack/cli/{item.name}: no capability in the table names it")
    return problems


def test_each_capability_has_one_name_in_its_four_homes() -> None:
    assert capability_problems() == []


def test_the_capability_table_fails_when_a_home_goes_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    table = dict(CAPABILITIES)
    table["rag"] = ("flows/rag.py", "mlstack/rag", "mlstack/cli/retrieval.py")
    table["widgets"] = ("flows/widgets.py", "mlstack/widgets", "mlstack/cli/widgets.py")
    monkeypatch.setitem(globals(), "CAPABILITIES", table)
    found = capability_problems()
    assert "rag: its command group is mlstack/cli/retrieval.py, not mlstack/cli/rag.py" in found
    assert "widgets: flows/widgets.py is missing" in found and "widgets: mlstack/widgets is missing" in found
    assert "mlstack/cli/rag.py: no capability in the table names it" in found


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
    # The house rules, dvc.yaml's pipeline, the workflows and worker images, and the docs (their
    # links, their commands, and the walk in docs/classic-ml.md).
    project_wide = {"test_architecture.py", "test_dvc.py", "test_ci.py", "test_docs.py"}
    # Made-With-ML's behavioural tests of the trained model (tests/model/): what it must do, not
    # how one module does it.
    behavioural = {"models/tabular/test_behaviour.py"}
    orphans = []
    for test in sorted((PROJECT_ROOT / "tests").rglob("test_*.py")):
        relative = test.relative_to(PROJECT_ROOT / "tests")
        if (len(relative.parts) == 1 and relative.name in project_wide) or str(relative) in behavioural:
            continue
        target = PROJECT_ROOT / relative.parent / relative.name.removeprefix("test_")
        if not (target.is_file() or target.with_suffix("").is_dir()):
            orphans.append(str(relative))
    assert orphans == []


def untested() -> set[str]:
    """Modules of the code with no mirrored test: tests/a/test_b.py for a/b.py, or for a module
    of a flows/ package, the package's end-to-end test."""
    found = set()
    for package in PACKAGES:
        for path in sources(package):
            if path.name in ("__init__.py", "__main__.py"):
                continue
            relative = path.relative_to(PROJECT_ROOT)
            own = PROJECT_ROOT / "tests" / relative.parent / f"test_{relative.name}"
            packaged = PROJECT_ROOT / "tests" / relative.parent.parent / f"test_{relative.parent.name}.py"
            if not own.exists() and not (relative.parts[0] == "flows" and packaged.exists()):
                found.add(str(relative))
    return found


def test_the_modules_without_a_test_are_the_listed_ones_and_the_list_only_shrinks() -> None:
    now = untested()
    assert sorted(now - UNTESTED) == [], "a new module comes with its mirrored test"
    assert sorted(UNTESTED - now) == [], "these have a test now (or are gone): take them off UNTESTED"


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
    """Every Prefect flow defined in flows/, in its modules and its packages' modules."""
    import importlib

    from prefect import Flow

    found = []
    for path in sorted((PROJECT_ROOT / "flows").rglob("*.py")):
        if path.name == "__main__.py":  # runs a pipeline when imported
            continue
        module = importlib.import_module(".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts))
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
