"""The embedded Postgres: starts on first use, persists, is shared across processes, has pgvector."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from mlstack import postgres
from mlstack.cli import app
from mlstack.settings import Settings

WRITER = """
from mlstack import postgres
with postgres.connect() as conn:
    conn.execute("CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, embedding vector(3))")
    conn.execute("INSERT INTO items VALUES (1, '[1,0,0]'), (2, '[0,1,0]') ON CONFLICT DO NOTHING")
"""


@pytest.mark.slow
def test_embedded_postgres_starts_persists_and_is_shared(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home)
    try:
        # Another process starts the server and writes; it exits and the server stays up.
        env = {**os.environ, "MLSTACK_HOME": str(home)}
        subprocess.run([sys.executable, "-c", WRITER], env=env, check=True, timeout=120)
        assert postgres.embedded_running(settings.pg_dir)

        with postgres.connect(settings) as conn:
            nearest = conn.execute(
                "SELECT id FROM items ORDER BY embedding <-> '[0.9,0.1,0]' LIMIT 1"
            ).fetchone()
            assert nearest == (1,)

        # A full stop and restart keeps the data.
        assert postgres.stop_embedded(settings.pg_dir)
        assert not postgres.embedded_running(settings.pg_dir)
        with postgres.connect(settings) as conn:
            assert conn.execute("SELECT count(*) FROM items").fetchone() == (2,)
    finally:
        postgres.stop_embedded(settings.pg_dir)


@pytest.mark.slow
def test_vector_extension_is_created_and_usable(pg_settings: Settings) -> None:
    with postgres.connect(pg_settings) as conn:
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        assert version is not None
        conn.execute("CREATE TEMP TABLE v (e vector(2))")
        conn.execute("INSERT INTO v VALUES ('[3,4]')")
        assert conn.execute("SELECT e <-> '[0,0]' FROM v").fetchone()[0] == pytest.approx(5.0)
    status = postgres.status(pg_settings)
    assert status.state == "up" and status.server_version.startswith(str(postgres.EMBEDDED_MAJOR))


def test_status_does_not_start_the_embedded_server(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "untouched")
    assert postgres.status(settings).state == "stopped (starts on first use)"
    assert not settings.pg_dir.exists()


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://ml:s3cret@127.0.0.1:1/features", "127.0.0.1:1/features"),
        ("host=db.invalid port=5432 user=ml password=s3cret dbname=x", "db.invalid:5432/x"),
    ],
)
def test_unreachable_dsn_names_host_and_variable(dsn: str, shown: str) -> None:
    settings = Settings(postgres={"dsn": dsn, "connect_timeout_s": 2})
    with pytest.raises(postgres.PostgresUnavailable) as info:
        postgres.connect(settings)
    message = str(info.value)
    assert shown in message
    assert "MLSTACK_PG_DSN" in message
    assert "s3cret" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__, "no chained traceback"


def test_info_reports_a_down_postgres_and_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_PG_DSN", "postgresql://ml:s3cret@127.0.0.1:1/features")
    monkeypatch.setenv("MLSTACK_PG_CONNECT_TIMEOUT_S", "2")
    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 1, result.output  # a configured service that does not answer
    text = " ".join(result.output.replace("│", " ").split())  # rich wraps table cells
    assert "down cannot reach Postgres at" in text
    assert "configured but not answering: Postgres" in text
    assert "127.0.0.1:1/features" in text
    assert "s3cret" not in result.output


STEPS = [
    postgres.Migration(1, "a table", "CREATE TABLE widgets (id int PRIMARY KEY)"),
    postgres.Migration(2, "a column", "ALTER TABLE widgets ADD COLUMN name text"),
]


@pytest.mark.slow
def test_each_domain_runs_its_own_steps_once_and_in_order(pg_settings: Settings) -> None:
    with postgres.connect(pg_settings) as conn:
        assert postgres.migrate(conn, "widgets", list(reversed(STEPS))) == [1, 2]
        assert postgres.migrate(conn, "widgets", STEPS) == []  # a rerun does nothing
        conn.execute("INSERT INTO widgets (id, name) VALUES (1, 'a')")
        # Another domain numbers its steps from 1 too, without colliding.
        assert postgres.migrate(conn, "gadgets", [postgres.Migration(1, "noop", "SELECT 1")]) == [1]
        rows = conn.execute(
            "SELECT domain, version FROM schema_migrations WHERE domain IN ('widgets', 'gadgets')"
            " ORDER BY domain, version"
        ).fetchall()
        assert rows == [("gadgets", 1), ("widgets", 1), ("widgets", 2)]


@pytest.mark.slow
def test_a_failed_step_leaves_no_half_schema(pg_settings: Settings) -> None:
    broken = [
        postgres.Migration(1, "a table", "CREATE TABLE broken_widgets (id int PRIMARY KEY)"),
        postgres.Migration(2, "a typo", "ALTER TABLE nowhere ADD COLUMN x int"),
    ]
    with postgres.connect(pg_settings) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable, match="nowhere"):
            postgres.migrate(conn, "broken", broken)
        assert conn.execute("SELECT to_regclass('broken_widgets')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM schema_migrations WHERE domain = 'broken'").fetchone() == (
            0,
        )


@pytest.mark.slow
def test_a_ledger_from_before_domains_is_upgraded_without_rerunning_steps(tmp_path: Path) -> None:
    """Data dirs made before domains owned their schema recorded the trip-prediction steps
    without a domain; those steps must count as done, not run again."""
    from mlstack.data import predictions

    settings = Settings(home=tmp_path / "old")
    try:
        with postgres.connect(settings) as conn:
            conn.execute(
                "CREATE TABLE schema_migrations (version int PRIMARY KEY, description text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for step in predictions.MIGRATIONS:
                conn.execute(step.sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version, description) VALUES (%s, %s)",
                    (step.version, step.description),
                )
            assert predictions.migrate(conn) == []  # CREATE TABLE again would have failed
            domains = conn.execute("SELECT DISTINCT domain FROM schema_migrations").fetchall()
            assert domains == [(predictions.DOMAIN,)]
            assert postgres.migrate(conn, "other", [postgres.Migration(1, "noop", "SELECT 1")]) == [1]
    finally:
        postgres.stop_embedded(settings.pg_dir)


def test_a_data_dir_of_another_major_version_is_refused_untouched(tmp_path: Path) -> None:
    """What pgserver's Postgres 16 left: Postgres 18 cannot open it, and must not init over it."""
    settings = Settings(home=tmp_path / "home")
    settings.pg_dir.mkdir(parents=True)
    (settings.pg_dir / "PG_VERSION").write_text("16\n")
    (settings.pg_dir / "base").mkdir()
    before = sorted(p.name for p in settings.pg_dir.iterdir())
    with pytest.raises(postgres.PostgresUnavailable) as refused:
        postgres.connect(settings)
    message = str(refused.value)
    assert "Postgres 16 data dir" in message and "Postgres 18" in message
    assert "pg_dumpall" in message and "MLSTACK_PG_DSN" in message and "Nothing was changed" in message
    assert sorted(p.name for p in settings.pg_dir.iterdir()) == before
    assert postgres.status(settings).state.startswith("down: ")


@pytest.mark.slow
def test_the_embedded_server_has_pgvector_0_8_and_pg_trgm(pg_settings: Settings) -> None:
    with postgres.connect(pg_settings) as conn:
        major = conn.execute("SHOW server_version_num").fetchone()[0]
        vector = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        trgm = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'").fetchone()
    assert int(major) // 10000 == postgres.EMBEDDED_MAJOR
    assert tuple(int(part) for part in vector.split(".")[:2]) >= (0, 8)
    assert trgm is not None  # the Prefect server's migrations need it
