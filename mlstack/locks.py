"""The one lock discipline: every read-modify-write of shared state holds the lock named for it.

- Files: `file_lock(folder)`, an OS lock (flock, via the `filelock` package) on `.<folder>.lock`
  beside the folder: keyed on the folder itself, so every writer finds it whatever its settings
  say, and not inside it, where a DVC output would take it in. The kernel drops it when its
  holder dies, so a SIGKILLed run never leaves a lock behind.
- Tables in Postgres: `table_lock(conn, name)`, a transaction-scoped advisory lock. It is freed
  by commit, rollback, or the connection dropping, and it serialises writers on any host that
  shares the database.
- The model registry: `file_lock` on the registry's folder under the data dir. MLflow offers no
  lock; with a remote tracking server, one writer host at a time is the deployment's job (a
  Prefect concurrency limit on the training deployments).

A lock that is not free within its timeout raises `Busy`, which is transient: Prefect retries it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlstack.errors import Busy

DEFAULT_TIMEOUT_S = 600.0


def lock_path(folder: Path) -> Path:
    resolved = folder.resolve()
    return resolved.parent / f".{resolved.name}.lock"


@contextmanager
def file_lock(folder: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[None]:
    """Hold the lock of `folder` (created if missing) for the block."""
    from filelock import FileLock, Timeout

    folder.mkdir(parents=True, exist_ok=True)
    path = lock_path(folder)
    # One object per path (is_singleton): a holder that takes the lock again nests instead of
    # waiting for itself, as a second flock on a new descriptor would.
    lock = FileLock(path, mode=0o666, is_singleton=True)
    try:
        lock.acquire(timeout=timeout_s)
    except Timeout:
        raise Busy(
            f"{folder} is being written by another run (lock {path} held for"
            f" {timeout_s:g} s); wait for it to finish, then run again"
        ) from None
    try:
        yield
    finally:
        lock.release()


def table_lock(conn: object, table: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Take the advisory lock of `table` for the rest of the current transaction.

    Whole-table, not per window: two windows may overlap, and writers of a table are short.
    """
    import psycopg

    with conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(timeout_s * 1000)}ms",))
        try:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"mlstack:{table}",))
        except psycopg.errors.LockNotAvailable:
            raise Busy(
                f"table {table} is being written by another run (waited {timeout_s:g} s); run again"
            ) from None
