"""Every log record, from any library, passes two rules before a handler sees it.

- Secrets are scrubbed (`mlstack.secrets.scrub`) from the message and any traceback text, so
  neither the console nor Prefect's API log handler (and so its database) ever holds one.
- A known failure (`mlstack.errors.MlstackError`) is logged without its traceback: its message
  is the whole story, and Prefect would otherwise print 70 lines around one sentence.

A record factory, rather than a handler filter, because it covers records of every logger and
handler, including the ones Prefect adds after we install it.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from mlstack.errors import MlstackError
from mlstack.secrets import current_secrets, scrub

# The variables that settings read secrets from; the cache is refreshed when one changes.
_SECRET_SOURCES = ("MLSTACK_", "OPENAI_", "MLFLOW_TRACKING_URI")
_cache: tuple[tuple[tuple[str, str], ...], frozenset[str]] | None = None
# Reading settings can log (apprise warns about a URL it cannot parse): no recursion into it.
_reading = threading.local()


def known_secrets() -> frozenset[str]:
    """Every secret the settings hold now, cached until a variable they read from changes."""
    global _cache
    key = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(_SECRET_SOURCES)))
    if (_cache is None or _cache[0] != key) and not getattr(_reading, "active", False):
        _reading.active = True
        try:
            found = frozenset(current_secrets())
        except Exception:  # settings that do not validate must not break logging itself
            found = frozenset()
        finally:
            _reading.active = False
        _cache = (key, found)
    return _cache[1] if _cache else frozenset()


def clean(record: logging.LogRecord) -> logging.LogRecord:
    """Apply both rules to one record, in place."""
    error = record.exc_info[1] if record.exc_info else None
    if isinstance(error, MlstackError):
        record.exc_info, record.exc_text = None, None
    secrets = known_secrets()
    if secrets:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: logging reports it at emit time, as it always has
            return record
        scrubbed = scrub(message, secrets)
        if scrubbed != message:
            record.msg, record.args = scrubbed, ()
        if record.exc_info:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info), secrets)
    return record


def install() -> None:
    """Wrap the current record factory once per process."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "mlstack_clean", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return clean(previous(*args, **kwargs))

    factory.mlstack_clean = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
