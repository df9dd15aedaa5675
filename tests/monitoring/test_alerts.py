"""Alerts: apprise targets and the local sink, and the messages monitoring and retraining send."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from mlstack.registry import GateDecision
from mlstack.settings import Settings
from monitoring import alerts
from monitoring.drift import DriftSummary


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> str:
    """A real HTTP endpoint on loopback that apprise's json:// plugin posts to."""
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"json://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


def test_alerts_reach_apprise_targets_and_the_local_sink(webhook: str, mlstack_home: Path) -> None:
    urls = [webhook, "json://alerts:CANARY-PASSWORD@127.0.0.1:9/refused", "nonsense://x"]
    settings = Settings(home=mlstack_home, monitoring={"alert_urls": urls})
    alert = alerts.Alert(
        "drift", "trip_duration", "3", "drift", "distance_km moved", {"share": 0.5}, "/r.html"
    )
    deliveries = alerts.send(alert, settings)

    assert [d.ok for d in deliveries] == [True, True, False, False]
    assert "not a URL apprise understands" in (deliveries[3].error or "")
    assert deliveries[2].target == "json://alerts:****@127.0.0.1:9/refused"  # apprise's privacy form
    assert deliveries[2].error and "CANARY" not in deliveries[2].error
    [posted] = _Hook.received
    assert posted["title"] == "drift" and "distance_km moved" in posted["message"]
    assert "/r.html" in posted["message"]
    [logged] = alerts.read_log(settings)
    assert logged["model"] == "trip_duration" and logged["version"] == "3"
    assert logged["details"] == {"share": 0.5} and logged["report"] == "/r.html"


def test_the_local_sink_can_be_switched_off(mlstack_home: Path) -> None:
    settings = Settings(home=mlstack_home, monitoring={"alert_log": False})
    assert alerts.send(alerts.Alert("drift", "m", "1", "t", "b"), settings) == []
    assert alerts.read_log(settings) == []


def test_alert_urls_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_MONITORING_ALERT_URLS", "slack://a/b/c, mailto://u:p@example.com")
    urls = Settings().monitoring.alert_urls
    assert [url.get_secret_value() for url in urls] == ["slack://a/b/c", "mailto://u:p@example.com"]
    assert "slack://a/b/c" not in repr(urls), "a secret, shown as stars"


SUMMARY = DriftSummary(
    alert=True,
    dataset_drift=True,
    drifted_share=0.375,
    drift_share_threshold=0.3,
    monitored_columns=16,
    drifted_columns=["distance_km", "pickup_zone"],
    scores={"distance_km": 0.0, "pickup_zone": 0.001},
    missing=[],
    performance=None,
    reference_rows=5000,
    current_rows=1200,
    reasons=["data drift: 6 of 16 columns"],
    reports={"drift": Path("/r/drift.html")},
)


def test_a_drift_alert_carries_the_findings_and_the_report() -> None:
    start, end = datetime(2026, 9, 15, tzinfo=UTC), datetime(2026, 9, 18, tzinfo=UTC)
    alert = alerts.drift_alert(SUMMARY, "3", start, end)
    assert alert.title == "trip_duration v3: drift in 2026-09-15 00:00 to 2026-09-18 00:00"
    assert alert.body == "data drift: 6 of 16 columns" and alert.report == "/r/drift.html"
    assert alert.details["drifted_columns"] == ["distance_km", "pickup_zone"]
    json.dumps(alert.details)  # plain values, ready for any sink


def test_a_retraining_alert_says_both_scores_and_how_to_undo() -> None:
    decision = GateDecision("4", "3", 280.0, 400.0, 0.01, True, "MAE 280.0s vs champion v3 400.0s")
    alert = alerts.retraining_alert(decision, "data drift", "2026-09-17 to 2026-09-18")
    assert alert.title == "trip_duration: retrained v4 promoted to champion"
    assert "challenger MAE 280.0s, champion v3 MAE 400.0s" in alert.body
    assert alert.body.endswith("Undo with `mlstack model rollback`.")
    first = GateDecision("1", None, 300.0, None, 0.01, True, "no champion yet")
    assert "champion none MAE n/a" in alerts.retraining_alert(first, "manual", "h").body
