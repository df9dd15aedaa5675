"""The one redaction helper: what a secret looks like when shown, and scrubbing it from any text.

Secrets live in settings as `SecretStr` (API keys, alert URLs); nothing else should hold one.
Two things leak them anyway: printing a URL whose path is a token (Slack, Telegram, Teams), and
an exception message that quotes the URL it failed on (requests puts the path in every
connection error). So:
- `redact_url` renders an alert URL the way apprise does with `privacy=True`: apprise knows, for
  each of its services, which parts are tokens;
- `scrub` replaces every secret the settings hold, and every token part of every alert URL, in
  any text: log records (installed by `mlstack.logs`), alert delivery errors, `info`, artifacts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, SecretStr

MASK = "****"
# Short pieces (a port, "v1", "api") are not secrets and would mangle every text they occur in.
MIN_SECRET_LENGTH = 4
_PARTS = re.compile(r"[/:@?&=#,;+]+")


def _apprise_private(url: str) -> str | None:
    import apprise

    # apprise logs a URL it cannot parse in full, as an error: quiet while we only render one.
    quiet = logging.getLogger("apprise")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL + 1)
    try:
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    finally:
        quiet.setLevel(level)
    return None if plugin is None else plugin.url(privacy=True)


def redact_url(url: str) -> str:
    """The URL with its secret parts masked; its scheme only if apprise cannot parse it."""
    private = _apprise_private(url)
    if private is None:
        scheme, sep, _ = url.partition("://")
        return f"{scheme}://{MASK}" if sep else MASK
    return private.split("?", 1)[0]  # the query holds apprise's defaults, not the user's URL


@lru_cache(maxsize=256)
def url_secrets(url: str) -> frozenset[str]:
    """The pieces of `url` that its privacy rendering hides (all of them if it cannot be parsed),
    plus the URL itself: the strings that must never appear in output."""
    _, sep, rest = url.partition("://")
    private = _apprise_private(url) if sep else None
    shown = set(_PARTS.split(private.partition("://")[2])) if private else set()
    location, _, query = (rest if sep else url).partition("?")
    # Query keys (token=, key=) are names, not secrets; their values may be.
    parts = set(_PARTS.split(location)) | {value for _, value in parse_qsl(query)}
    return frozenset({url, *(p for p in parts - shown if len(p) >= MIN_SECRET_LENGTH)})


def hide_password(url: str) -> str:
    """A service URL (http, a database) with the password in its user part masked. Unlike an
    alert URL, its path and host are where it points, not a token, so they stay."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return MASK
    if not password:
        return url
    netloc = parts.netloc.replace(f":{password}@", f":{MASK}@", 1)
    return parts._replace(netloc=netloc).geturl()


def dsn_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def secret_values(settings: object) -> set[str]:
    """Every secret a Settings object holds: SecretStr values (URLs with their token parts) and
    passwords inside connection URLs."""
    found: set[str] = set()
    for value in _walk(settings):
        if isinstance(value, SecretStr):
            found |= _secrets_of(value.get_secret_value())
        elif isinstance(value, str) and "://" in value and (password := dsn_password(value)):
            found.add(password)
    return {s for s in found if len(s) >= MIN_SECRET_LENGTH}


def _secrets_of(secret: str) -> set[str]:
    """An apprise URL's token parts; a connection URL's password; anything else whole."""
    if "://" in secret and _apprise_private(secret) is not None:
        return set(url_secrets(secret))
    password = dsn_password(secret) if "://" in secret else None
    return {secret, password} if password else {secret}


def _walk(value: object) -> Iterable[object]:
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _walk(getattr(value, name))
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from _walk(item)
    else:
        yield value


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with each secret replaced by the mask; the longest first, so a URL goes whole."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def current_secrets() -> set[str]:
    """The secrets of the settings as the environment gives them now."""
    from mlstack.settings import get_settings

    return secret_values(get_settings())
