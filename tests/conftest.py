"""Shared fixtures. Real parts throughout: Prefect's test harness, an embedded Postgres, real files."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

# Before anything imports mlstack.bootstrap (which reads it), so no test writes into the checkout.
SESSION_HOME = Path(tempfile.mkdtemp(prefix="mlstack-tests-"))
os.environ["MLSTACK_HOME"] = str(SESSION_HOME)
for _var in ("MLSTACK_PG_DSN", "MLFLOW_TRACKING_URI", "MLSTACK_MAX_BAD_ROW_SHARE", "PREFECT_API_URL"):
    os.environ.pop(_var, None)

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mlstack.data.generator import GeneratorConfig, generate, write_tables  # noqa: E402
from mlstack.settings import Settings  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SMALL = GeneratorConfig(start=date(2026, 9, 1), days=2, trips_per_day=600, n_drivers=40)


@pytest.fixture(autouse=True)
def mlstack_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own data dir."""
    home = tmp_path / "mlstack-home"
    monkeypatch.setenv("MLSTACK_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def small_tables() -> dict[str, pd.DataFrame]:
    """A small baseline window, generated once; copy before changing it."""
    return generate(SMALL)


@pytest.fixture(scope="session")
def clean_tables() -> dict[str, pd.DataFrame]:
    """The small window without the generator's spoiled rows, for tests that spoil their own."""
    return generate(replace(SMALL, bad_row_rate=0.0))


@pytest.fixture
def raw_dir(tmp_path: Path, clean_tables: dict[str, pd.DataFrame]) -> Path:
    """The clean small window written as parquet in a fresh folder."""
    out = tmp_path / "raw"
    write_tables(clean_tables, out)
    return out


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test server for the whole session: starting one takes seconds."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def pg_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings pointing at an embedded Postgres of this session's own, stopped at the end."""
    from mlstack.postgres import stop_embedded

    settings = Settings(home=tmp_path_factory.mktemp("pg-home"))
    yield settings
    stop_embedded(settings.pg_dir)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(SESSION_HOME, ignore_errors=True)
