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


ECHOED = "ghp_CANARYECHOEDTOKEN"


def test_a_known_failure_masks_every_configured_secret_it_quotes(monkeypatch: pytest.MonkeyPatch) -> None:
    """An API that echoes the Authorization header back in its error body: the error quoting
    that body reaches the CLI, the logs and Prefect's state messages masked, in str, repr and
    after a round trip through pickle (Prefect's results)."""
    import pickle

    from mlstack.sources import SourceError

    monkeypatch.setenv("MLSTACK_SOURCES_GITHUB_TOKEN", ECHOED)
    error = SourceError(f'GET /repos/o/r answered 401: {{"authorization": "token {ECHOED}"}}')
    for shown in (str(error), repr(error), str(pickle.loads(pickle.dumps(error)))):
        assert ECHOED not in shown and MASK in shown


def test_the_error_line_masks_what_it_prints(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from mlstack.cli.render import fail

    monkeypatch.setenv("MLSTACK_SOURCES_GITHUB_TOKEN", ECHOED)
    fail(f"rag-refresh flow failed: Task run encountered an exception: token {ECHOED}")
    printed = capsys.readouterr().err
    assert ECHOED not in printed and MASK in printed


ECHOED_SLACK = "xoxb-1234567890-CANARYSLACKECHOED"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_token_an_api_echoes_back_reaches_no_output_and_no_file(tmp_path) -> None:
    """`rag refresh` from a GitHub whose 401 quotes the request's Authorization header and a
    Slack whose error quotes it too (a loopback server in each API's error shape), as a user runs
    it: the command fails in one line, and neither its output nor any byte of the data dir,
    Prefect's database included, holds either token."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.kill import command_env, mlstack, run

    class EchoingAPIs(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            sent = self.headers.get("Authorization", "")
            if self.path.startswith("/slack/"):  # Slack answers 200 with ok: false
                status, answer = 200, {"ok": False, "error": f"invalid_auth for {sent}"}
            else:
                answer = {
                    "message": "Bad credentials",
                    "documentation_url": "https://docs.github.com/rest",
                    "request": {"authorization": sent},
                }
                status = 401
            body = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingAPIs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    home = tmp_path / "home"
    root = f"http://127.0.0.1:{server.server_address[1]}"
    env = command_env(
        home,
        MLSTACK_SOURCES_GITHUB_TOKEN=ECHOED,
        MLSTACK_SOURCES_GITHUB_API_URL=root,
        MLSTACK_SOURCES_SLACK_TOKEN=ECHOED_SLACK,
        MLSTACK_SOURCES_SLACK_API_URL=f"{root}/slack",
    )
    sources = ["--source", "github:acme/widgets", "--source", "slack:C0CANARY"]
    try:
        done = run(mlstack("rag", "refresh", *sources, "--no-evaluate"), env)
    finally:
        server.shutdown()
        # The local API the command started, before its files are read: its SQLite journal
        # files come and go while it runs (a scan once met a -shm file that had just gone).
        run(mlstack("down"), env)
        from mlstack.postgres import stop_embedded

        stop_embedded(Settings(home=home).pg_dir)
    assert done.returncode == 1, done.stderr[-2000:]
    said = done.stderr
    assert "2 of 2 sources could not be read" in said and "answered 401" in said, said[-2000:]
    assert "invalid_auth" in said and MASK in said, said[-2000:]
    for token in (ECHOED, ECHOED_SLACK):
        assert token not in done.stdout + said
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name == "prefect.db" for p in files)
    assert [str(p) for p in files if ECHOED.encode() in p.read_bytes()] == []
    assert [str(p) for p in files if ECHOED_SLACK.encode() in p.read_bytes()] == []
