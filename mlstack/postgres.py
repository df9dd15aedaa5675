"""Postgres with pgvector: an embedded server by default, any DSN when `MLSTACK_PG_DSN` is set.

The embedded server is a real Postgres 16 from the `pgserver` package, with its data under the
project's data dir. The first process to need it starts it; later processes find it running and
reuse it (pgserver keeps a pid file and a lock), so nothing is started twice.

Each domain owns its tables: it declares its `Migration` steps beside its own code and calls
`migrate(conn, domain, steps)` before it reads or writes them.
"""

from __future__ import annotations

import atexit
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psycopg
from psycopg import conninfo, sql

from mlstack.errors import MlstackError
from mlstack.settings import Settings, get_settings

DSN_VARIABLE = "MLSTACK_PG_DSN"


class PostgresUnavailable(MlstackError):
    """Postgres could not be reached or started; the message says where and what to do."""

    transient = True  # a server that is restarting answers a moment later


def _pgserver():  # imported lazily: it pulls psutil and platformdirs in
    with warnings.catch_warnings():
        # Without XDG_RUNTIME_DIR (containers, CI) platformdirs warns and falls back to /tmp: fine.
        warnings.simplefilter("ignore")
        import pgserver
    return pgserver


@cache
def _embedded(pg_dir: Path):  # -> pgserver.PostgresServer
    pgserver = _pgserver()
    pg_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        # cleanup_mode=None: the server outlives this process so the next one reuses it.
        return pgserver.get_server(pg_dir, cleanup_mode=None)
    except Exception as exc:
        log = pg_dir / "log"
        raise PostgresUnavailable(
            f"could not start the embedded Postgres in {pg_dir}: {exc}. "
            f"Its log is {log}. Remove {pg_dir} to start afresh, or set {DSN_VARIABLE} to use your own."
        ) from exc


def describe_dsn(dsn: str) -> str:
    """host:port/db of a DSN, without the password, for messages."""
    try:
        parts = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "an unparseable DSN"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or 5432
    return f"{host}:{port}/{parts.get('dbname') or parts.get('user') or 'postgres'}"


def resolve_dsn(settings: Settings | None = None) -> str:
    """The DSN to use, starting the embedded server if that is the one configured."""
    settings = settings or get_settings()
    if settings.postgres.dsn:
        return settings.postgres.dsn.get_secret_value()
    return _embedded(settings.pg_dir).get_uri()


def ensure_vector(conn: psycopg.Connection) -> None:
    """Create the pgvector extension if it is missing. Two processes may race; both succeed."""
    exists = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
    if exists:
        return
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.errors.UniqueViolation:
        pass  # the other process created it between our check and our create


def connect(settings: Settings | None = None, *, autocommit: bool = False) -> psycopg.Connection:
    """An open connection with pgvector ready and its types registered."""
    from pgvector.psycopg import register_vector

    settings = settings or get_settings()
    dsn = resolve_dsn(settings)
    try:
        conn = psycopg.connect(dsn, connect_timeout=settings.postgres.connect_timeout_s, autocommit=True)
    except psycopg.OperationalError as exc:
        source = (
            f"from {DSN_VARIABLE}" if settings.postgres.dsn else f"the embedded server in {settings.pg_dir}"
        )
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        hint = (
            f"Check the host and credentials, or unset {DSN_VARIABLE} to use the embedded Postgres."
            if settings.postgres.dsn
            else f"Remove {settings.pg_dir} to start afresh."
        )
        raise PostgresUnavailable(
            f"cannot reach Postgres at {describe_dsn(dsn)} ({source}): {reason}. {hint}"
        ) from None
    ensure_vector(conn)
    register_vector(conn)
    conn.autocommit = autocommit
    return conn


@dataclass(frozen=True)
class PostgresStatus:
    mode: str  # "embedded" or "external"
    target: str
    state: str  # "up", "stopped (starts on first use)" or "down: reason"
    server_version: str | None = None
    vector_version: str | None = None


def status(settings: Settings | None = None, *, start: bool = False) -> PostgresStatus:
    """How Postgres stands, without starting the embedded server unless `start` is set."""
    settings = settings or get_settings()
    dsn = settings.postgres.dsn
    mode = "external" if dsn else "embedded"
    target = describe_dsn(dsn.get_secret_value()) if dsn else str(settings.pg_dir)
    if mode == "embedded" and not start and not embedded_running(settings.pg_dir):
        return PostgresStatus(mode, target, "stopped (starts on first use)")
    try:
        with connect(settings) as conn:
            server = conn.execute("SHOW server_version").fetchone()[0]
            vector = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    except PostgresUnavailable as exc:
        return PostgresStatus(mode, target, f"down: {exc}")
    return PostgresStatus(mode, target, "up", server, vector[0] if vector else None)


def embedded_running(pg_dir: Path) -> bool:
    if not (pg_dir / "postmaster.pid").exists():
        return False
    _pgserver()
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pg_dir)
    return info is not None and info.is_running()


def stop_embedded(pg_dir: Path) -> bool:
    """Stop the embedded server if it runs; True when one was stopped."""
    if not embedded_running(pg_dir):
        return False
    pgserver = _pgserver()
    # Both caches hold a handle that would point at the stopped server.
    _embedded.cache_clear()
    stale = pgserver.PostgresServer._instances.pop(pg_dir.expanduser().resolve(), None)
    if stale is not None:
        atexit.unregister(stale._cleanup)  # it would look for the handle we just dropped
    system_user = "pgserver" if _running_as_root() else None
    pgserver.pg_ctl(["-w", "stop"], pgdata=pg_dir, user=system_user)
    return True


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass(frozen=True)
class Migration:
    """One step of a domain's schema. Append only: never edit a step that has shipped."""

    version: int
    description: str
    sql: str


# Before domains owned their migrations, one list held the trip-prediction tables' steps.
_FIRST_DOMAIN = "trip_predictions"
_MIGRATION_LOCK = 7_420_001


def _ensure_ledger(conn: psycopg.Connection) -> None:
    """The table recording which step of which domain ran, upgraded from the one-domain layout."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (domain text NOT NULL, version int NOT NULL,"
        " description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),"
        " PRIMARY KEY (domain, version))"
    )
    has_domain = conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = 'schema_migrations' AND column_name = 'domain'"
    ).fetchone()
    if not has_domain:
        # DDL takes no bind parameters; the constant goes in as a quoted literal.
        conn.execute(
            sql.SQL("ALTER TABLE schema_migrations ADD COLUMN domain text NOT NULL DEFAULT {}").format(
                sql.Literal(_FIRST_DOMAIN)
            )
        )
        conn.execute("ALTER TABLE schema_migrations ALTER COLUMN domain DROP DEFAULT")
        conn.execute(
            "ALTER TABLE schema_migrations DROP CONSTRAINT schema_migrations_pkey,"
            " ADD PRIMARY KEY (domain, version)"
        )


def migrate(conn: psycopg.Connection, domain: str, migrations: Sequence[Migration]) -> list[int]:
    """Apply the steps of `domain` this database lacks, in order; returns the versions applied now.

    All in one transaction, under an advisory lock, so two processes starting together neither
    race nor leave half a schema behind.
    """
    applied_now = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        _ensure_ledger(conn)
        done = {
            row[0]
            for row in conn.execute("SELECT version FROM schema_migrations WHERE domain = %s", (domain,))
        }
        for step in sorted(migrations, key=lambda m: m.version):
            if step.version in done:
                continue
            conn.execute(step.sql)
            conn.execute(
                "INSERT INTO schema_migrations (domain, version, description) VALUES (%s, %s, %s)",
                (domain, step.version, step.description),
            )
            applied_now.append(step.version)
    return applied_now
