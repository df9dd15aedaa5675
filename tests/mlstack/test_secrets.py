"""Secrets shown as apprise's privacy form, and scrubbed from any text."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from mlstack.secrets import MASK, redact_url, scrub, secret_values, url_secrets
from mlstack.settings import Settings

# Each service keeps its secret somewhere else: a path, a user part, a bot token with a colon.
CASES = {
    "slack://TOKACANARY/TOKBCANARY/TOKCCANARY": ("TOKACANARY", "TOKBCANARY", "TOKCCANARY"),
    "tgram://987654321:AAHCANARYTELEGRAM/12345": ("987654321", "AAHCANARYTELEGRAM"),
    "pover://USERCANARYKEY@APPCANARYTOKEN": ("USERCANARYKEY", "APPCANARYTOKEN"),
    "msteams://team/CANARYTEAMSA/CANARYTEAMSB/CANARYTEAMSC": ("CANARYTEAMSA", "CANARYTEAMSB"),
    "mailto://user:CANARYPASSWORD@gmail.com": ("CANARYPASSWORD",),
    "json://example.com/hook?token=CANARYQUERY": ("CANARYQUERY",),
    "a string without a scheme CANARYPLAIN": ("a string without a scheme CANARYPLAIN",),
}


@pytest.mark.parametrize("url", CASES)
def test_no_secret_part_survives_redaction(url: str) -> None:
    shown = redact_url(url)
    for secret in CASES[url]:
        assert secret not in shown
        assert secret in url_secrets(url)
    text = f"POST failed: HTTPSConnectionPool: Max retries exceeded with url: {url} ({CASES[url][0]})"
    assert not any(secret in scrub(text, url_secrets(url)) for secret in CASES[url])


def test_what_is_not_secret_stays_readable() -> None:
    assert redact_url("slack://TOKACANARY/TOKBCANARY/TOKCCANARY").startswith("slack://")
    assert redact_url("mailto://user:CANARYPASSWORD@gmail.com") == f"mailtos://user:{MASK}@gmail.com/"
    assert redact_url("tgram://987654321:AAHCANARYTELEGRAM/12345").endswith("/12345/")  # the chat id
    parts = url_secrets("json://example.com/hook?token=CANARYQUERY")
    assert "token" not in parts and "example.com" not in parts, "names and hosts are not secrets"
    assert scrub("the token expired", parts) == "the token expired"


def test_settings_yield_every_secret_they_hold() -> None:
    settings = Settings(
        llm={"openai_api_key": "sk-CANARYOPENAI"},
        monitoring={"alert_urls": ["slack://TOKACANARY/TOKBCANARY/TOKCCANARY"]},
        postgres={"dsn": "postgresql://app:CANARYPGPASS@db.internal:5432/mlstack"},
    )
    found = secret_values(settings)
    assert {"sk-CANARYOPENAI", "TOKACANARY", "TOKCCANARY", "CANARYPGPASS"} <= found
    assert "db.internal" not in found and "app" not in found
    assert isinstance(settings.monitoring.alert_urls[0], SecretStr)
