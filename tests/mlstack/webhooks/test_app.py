"""The running receiver (`mlstack serve-webhooks`, a real process on a real Postgres and the data
dir's Prefect API) answered with deliveries signed as GitHub and Slack sign them: good ones are
recorded once and become Prefect events carrying ids only; every refusal has its status and
writes nothing; neither secret reaches its output, the table or an event."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mlstack import processes
from mlstack.postgres import connect, resolve_dsn
from mlstack.settings import Settings
from tests.kill import command_env, mlstack
from tests.mlstack.webhooks.signing import (
    GITHUB_SECRET,
    SLACK_SECRET,
    dumps,
    github_comment,
    github_headers,
    github_issue,
    slack_headers,
    slack_message,
)

pytestmark = pytest.mark.slow

MAX_BODY = 4096


@dataclass
class Receiver:
    url: str
    log: Path
    settings: Settings
    home: Path

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", content=body, headers=headers, timeout=30)

    def rows(self, delivery: str) -> int:
        with connect(self.settings, autocommit=True) as conn:
            return conn.execute(
                "SELECT count(*) FROM webhook_deliveries WHERE id = %s", (delivery,)
            ).fetchone()[0]


@pytest.fixture(scope="module")
def receiver(pg_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    home = tmp_path_factory.mktemp("webhooks") / "home"
    port = processes.free_port()
    dsn = resolve_dsn(pg_settings)
    env = command_env(
        home,
        MLSTACK_PG_DSN=dsn,
        MLSTACK_WEBHOOKS_GITHUB_SECRET=GITHUB_SECRET,
        MLSTACK_SLACK_SIGNING_SECRET=SLACK_SECRET,  # the name Slack's docs use works too
        MLSTACK_WEBHOOKS_PORT=str(port),
        MLSTACK_WEBHOOKS_MAX_BODY_BYTES=str(MAX_BODY),
    )
    log = home.parent / "receiver.log"
    with log.open("wb") as out:
        process = subprocess.Popen(mlstack("serve-webhooks"), env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).json() == {"ok": True, "github": True, "slack": True}:
                break
        except httpx.HTTPError:
            assert process.poll() is None, log.read_text()[-3000:]
            time.sleep(0.3)
    else:
        raise AssertionError(log.read_text()[-3000:])
    try:
        yield Receiver(url, log, Settings(postgres={"dsn": dsn}, home=home), home)
    finally:
        process.terminate()
        process.wait(timeout=30)
        subprocess.run(mlstack("down"), env=env, capture_output=True, timeout=120)


def test_a_github_delivery_is_recorded_once_and_a_redelivery_does_nothing(receiver: Receiver) -> None:
    body = dumps(github_issue("octo/cat", 41))
    headers = github_headers(body)
    accepted = receiver.post("/webhooks/github", body, headers)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["document"] == "github:octo/cat#41"
    again = receiver.post("/webhooks/github", body, headers)  # GitHub's "Redeliver"
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert receiver.rows(f"github:{headers['X-GitHub-Delivery']}") == 1

    comment = dumps(github_comment("octo/cat", 41, 7, "deleted"))
    assert (
        receiver.post("/webhooks/github", comment, github_headers(comment, "issue_comment")).status_code
        == 202
    )


def test_every_refusal_has_its_status_and_writes_nothing(receiver: Receiver) -> None:
    body = dumps(github_issue("octo/cat", 42))
    cases = {
        "tampered body": (body.replace(b"42", b"43"), github_headers(body), 401),
        "wrong secret": (body, github_headers(body, secret="not-the-secret"), 401),
        "no signature": (body, {k: v for k, v in github_headers(body).items() if "Signature" not in k}, 401),
        "oversized": (b" " * (MAX_BODY + 1), github_headers(b" " * (MAX_BODY + 1)), 413),
        "not JSON": (b"{nope", github_headers(b"{nope"), 400),
        "unknown event": (body, github_headers(body, "push"), 202),
    }
    for name, (sent, headers, status) in cases.items():
        answer = receiver.post("/webhooks/github", sent, headers)
        assert answer.status_code == status, (name, answer.text)
        assert receiver.rows(f"github:{headers['X-GitHub-Delivery']}") == 0, name
    assert "ignored" in receiver.post("/webhooks/github", body, github_headers(body, "push")).json()
    ping = dumps({"zen": "Design for failure.", "hook_id": 1})
    assert receiver.post("/webhooks/github", ping, github_headers(ping, "ping")).json() == {"pong": True}


def test_slack_s_challenge_a_message_its_retry_and_a_replay(receiver: Receiver) -> None:
    challenge = dumps(
        {"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    )
    answer = receiver.post("/webhooks/slack", challenge, slack_headers(challenge))
    assert answer.status_code == 200 and answer.json()["challenge"].startswith("3eZbrw")

    message = slack_message("C0FAKE1", "1790000000.000200", thread_ts="1790000000.000100")
    body = dumps(message)
    assert receiver.post("/webhooks/slack", body, slack_headers(body)).status_code == 202
    retry = receiver.post("/webhooks/slack", body, slack_headers(body, retry=1))
    assert retry.status_code == 200 and retry.json()["duplicate"] is True
    assert receiver.rows(f"slack:{message['event_id']}") == 1

    fresh = slack_message("C0FAKE1", "1790000001.000100")
    replayed = dumps(fresh)
    old = receiver.post(
        "/webhooks/slack", replayed, slack_headers(replayed, timestamp=int(time.time()) - 600)
    )
    assert old.status_code == 401 and "replay" in old.text
    assert receiver.rows(f"slack:{fresh['event_id']}") == 0


def test_a_source_whose_secret_is_not_set_answers_503_and_names_the_setting(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from mlstack.webhooks.app import create_app

    settings = receiver.settings.model_copy(
        update={"webhooks": receiver.settings.webhooks.model_copy(update={"slack_signing_secret": None})}
    )
    body = dumps(slack_message("C1", "1.1"))
    answer = TestClient(create_app(settings)).post(
        "/webhooks/slack", content=body, headers=slack_headers(body)
    )
    assert answer.status_code == 503 and "MLSTACK_WEBHOOKS_SLACK_SIGNING_SECRET" in answer.text


def test_the_events_carry_ids_and_no_secret_reaches_output_table_or_event(receiver: Receiver) -> None:
    body = dumps(github_issue("octo/dog", 9))
    delivery = str(uuid.uuid4())
    assert receiver.post("/webhooks/github", body, github_headers(body, delivery=delivery)).status_code == 202
    from mlstack.deploy.api import local_api

    api = local_api(receiver.settings)  # the receiver's: the data dir's local API, reused
    query = {
        "filter": {
            "event": {"name": ["mlstack.github.issue.updated"]},
            "occurred": {"since": "2000-01-01T00:00:00Z"},
        }
    }

    def sent() -> list[dict]:
        found = httpx.post(f"{api}/events/filter", json=query, timeout=30).json()["events"]
        return [e for e in found if e["payload"].get("delivery") == delivery]

    deadline = time.monotonic() + 60
    while not (events := sent()) and time.monotonic() < deadline:
        time.sleep(0.5)
    [event] = events
    assert event["resource"]["prefect.resource.id"] == "mlstack.github.issue.octo/dog#9"
    assert event["resource"]["mlstack.source"] == "github:octo/dog"
    assert event["payload"]["number"] == 9 and "private" not in json.dumps(event)

    signatures = [github_headers(body, delivery=delivery)["X-Hub-Signature-256"].split("=", 1)[1]]
    with connect(receiver.settings, autocommit=True) as conn:
        table = json.dumps(conn.execute("SELECT * FROM webhook_deliveries").fetchall(), default=str)
    # Every file of the data dir: logs, the local Prefect API's database (its events), records.
    files = {str(p): p.read_bytes() for p in receiver.home.rglob("*") if p.is_file()}
    files |= {
        "output": receiver.log.read_bytes(),
        "table": table.encode(),
        "event": json.dumps(event).encode(),
    }
    for secret in (GITHUB_SECRET, SLACK_SECRET, *signatures):
        assert not [name for name, data in files.items() if secret.encode() in data], secret
