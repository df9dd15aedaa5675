"""The one error boundary: which failures are known, and which of them a retry can fix.

A known failure (`MlstackError`) is something a user can act on. Its message is one line that
says what is wrong and what to do next, so the CLI prints just that line and exits 1, and the
log filter in `mlstack.logs` keeps its traceback out of Prefect's logs. Everything else is a
bug and keeps its traceback.

`transient` is what Prefect's `retry_condition_fn` asks (see `flows.tasks.retry`): only a
failure that can succeed on a second try is retried; a bad input or a broken contract fails at
once instead of three times.
"""

from __future__ import annotations

from pathlib import Path


class MlstackError(Exception):
    """A failure with a one-line message that says what to do next.

    Its message reaches the CLI's error line, the logs and Prefect's state messages, which its
    database keeps; an API that echoes a token back in an error body would carry it there. So
    every configured secret is masked when the error is made: str, repr and pickle agree."""

    transient = False

    def __init__(self, *args: object) -> None:
        super().__init__(*(_masked(arg) for arg in args))


def _masked(value: object) -> object:
    if not isinstance(value, str):
        return value
    from mlstack.logs import known_secrets  # logs imports this module
    from mlstack.secrets import scrub

    return scrub(value, known_secrets())


class InputError(MlstackError, ValueError):
    """An input (an option, a file, a window) that cannot be used as given."""


class NotReady(MlstackError):
    """A step that needs an earlier one first (no champion, no validated data)."""


class Busy(MlstackError):
    """Another run holds what this one needs; trying again later can work."""

    transient = True


def unreadable(path: Path, exc: BaseException, what: str = "parquet") -> InputError:
    """An InputError for a file that exists but cannot be read as `what`."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InputError(f"{path}: not a readable {what} file ({first}). Regenerate it or point at another.")


def transient(exc: BaseException) -> bool:
    """Whether trying the same thing again can succeed: lost connections, timeouts, busy locks,
    serialisation conflicts. Bugs and bad inputs are never transient."""
    if isinstance(exc, MlstackError):
        return exc.transient
    import psycopg

    if isinstance(exc, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected):
        return True
    if isinstance(exc, psycopg.errors.IntegrityError | psycopg.errors.ProgrammingError):
        return False
    return isinstance(exc, psycopg.OperationalError | ConnectionError | TimeoutError)
