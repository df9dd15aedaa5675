"""Alerts: one message, sent to every apprise URL in settings and to a local JSON-lines sink.

apprise knows Slack, email, Teams, PagerDuty, plain JSON webhooks and a hundred more, so one
setting (`MLSTACK_MONITORING_ALERT_URLS`) points alerts anywhere. The JSON-lines sink under the data dir is
on by default, so the demo's alerts can be read without any service. A target that fails is
reported in the result; it never stops the caller, which still records its decision.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlstack.secrets import redact_url, scrub, url_secrets
from mlstack.settings import MODEL_NAME, Settings

if TYPE_CHECKING:
    from mlstack.registry import GateDecision
    from monitoring.drift import DriftSummary


@dataclass(frozen=True)
class Alert:
    kind: str  # "drift", "retraining" or "rag"
    model: str
    version: str | None
    title: str
    body: str
    details: dict[str, Any] = field(default_factory=dict)
    report: str | None = None
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def text(self) -> str:
        lines = [self.body]
        if self.report:
            lines.append(f"Report: {self.report}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Delivery:
    target: str
    ok: bool
    error: str | None = None


def drift_alert(summary: DriftSummary, version: str, start: datetime, end: datetime) -> Alert:
    return Alert(
        kind="drift",
        model=MODEL_NAME,
        version=version,
        title=f"{MODEL_NAME} v{version}: drift in {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}",
        body="\n".join(summary.reasons),
        details=summary.model_dump(mode="json"),
        report=str(summary.reports.get("drift", "")) or None,
    )


def retraining_alert(decision: GateDecision, trigger: str, holdout: str) -> Alert:
    """The gate's decision on a retrained model, with both scores and how to undo it."""
    verdict = "promoted to champion" if decision.promoted else "not promoted; the champion stays"
    champion = f"v{decision.champion}" if decision.champion else "none"
    champion_mae = "n/a" if decision.champion_mae is None else f"{decision.champion_mae:.1f}s"
    return Alert(
        kind="retraining",
        model=MODEL_NAME,
        version=decision.challenger,
        title=f"{MODEL_NAME}: retrained v{decision.challenger} {verdict}",
        body=(
            f"Retrained because: {trigger}. Holdout {holdout}: challenger"
            f" MAE {decision.challenger_mae:.1f}s, champion {champion} MAE {champion_mae}."
            f" {decision.reason}. Undo with `mlstack model rollback`."
        ),
        details={
            "promoted": decision.promoted,
            "challenger_mae": decision.challenger_mae,
            "champion": decision.champion,
            "champion_mae": decision.champion_mae,
            "trigger": trigger,
        },
    )


def rag_alert(collection: str, regression: str, metrics: dict[str, dict[str, float]]) -> Alert:
    return Alert(
        kind="rag",
        model=f"rag:{collection}",
        version=None,
        title=f"RAG collection {collection}: retrieval got worse",
        body=f"After a refresh of {collection}, {regression}.",
        details={"metrics": metrics},
    )


def _append_log(alert: Alert, settings: Settings) -> Delivery:
    path = settings.alerts_log
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:  # one write of one line: readers never see half an alert
            handle.write(json.dumps(asdict(alert), default=str) + "\n")
        return Delivery(str(path), True)
    except OSError as exc:
        return Delivery(str(path), False, f"cannot append to {path}: {exc}")


def _notify(alert: Alert, url: str) -> Delivery:
    """One delivery. Its target is the privacy rendering, and its error is scrubbed: an HTTP
    client's error quotes the URL path, which for Slack or Teams is the token itself."""
    import apprise

    target = redact_url(url)
    sender = apprise.Apprise()
    if not sender.add(url):
        return Delivery(
            target, False, "not a URL apprise understands; see https://github.com/caronc/apprise/wiki"
        )
    try:
        sent = sender.notify(title=alert.title, body=alert.text())
    except Exception as exc:  # a plugin's failure must not stop the flow
        return Delivery(target, False, scrub(f"{type(exc).__name__}: {exc}", url_secrets(url)))
    return Delivery(target, bool(sent), None if sent else "the service refused or could not be reached")


def send(alert: Alert, settings: Settings) -> list[Delivery]:
    """Deliver to the local sink (unless disabled) and every configured URL; report each outcome."""
    deliveries = [_append_log(alert, settings)] if settings.monitoring.alert_log else []
    deliveries += [_notify(alert, url.get_secret_value()) for url in settings.monitoring.alert_urls]
    return deliveries


def read_log(settings: Settings) -> list[dict[str, Any]]:
    path = settings.alerts_log
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
