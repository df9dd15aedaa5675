"""The receiver's HTTP side: `POST /webhooks/github` and `POST /webhooks/slack`.

Each delivery is read up to the size limit (413 past it), verified (401, nothing written),
parsed (400 for a payload that is not what GitHub or Slack send), recorded once (a redelivery
answers 200 and does nothing), and announced as a Prefect event (202). An event this receiver
does not act on is answered 202 and logged as ignored; an endpoint whose secret is not set
answers 503 and names the setting. Neither a secret nor a signature is logged or stored.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mlstack.webhooks import deliveries, inbox
from mlstack.webhooks.deliveries import Delivery, Refused

log = logging.getLogger("mlstack.webhooks")


async def _body(request: Request, limit: int) -> bytes:
    """The raw body, refused once it passes `limit` bytes: a declared length or a stream."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Refused(413, f"the body is over {limit:,} bytes (MLSTACK_WEBHOOKS_MAX_BODY_BYTES)")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise Refused(413, f"the body is over {limit:,} bytes (MLSTACK_WEBHOOKS_MAX_BODY_BYTES)")
    return bytes(body)


def _emit(delivery: Delivery) -> None:
    """The Prefect event its trigger starts a refresh on; a failure to send is logged, and the
    pending row still reaches the next refresh."""
    from prefect.events import emit_event

    try:
        emit_event(
            event=delivery.event,
            resource=delivery.resource,
            payload=delivery.payload,
            id=delivery.event_id,
        )
    except Exception as exc:  # the delivery is recorded; the scheduled refresh takes it
        log.warning("delivery %s recorded, but its Prefect event was not sent: %s", delivery.id, exc)


def create_app(settings: Any) -> FastAPI:
    app = FastAPI(
        title="mlstack webhooks",
        description="GitHub and Slack deliveries into Prefect events.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    conn = inbox.connect(settings)  # the schema at start; a connection a request for each write
    conn.close()
    hooks = settings.webhooks

    def accept(delivery: Delivery) -> JSONResponse:
        with inbox.connect(settings) as conn:
            new = inbox.record(conn, delivery)
        if not new:
            log.info("delivery %s (%s) seen before: nothing done", delivery.id, delivery.action)
            return JSONResponse({"duplicate": True, "delivery": delivery.id}, status_code=200)
        _emit(delivery)
        log.info("delivery %s: %s on %s", delivery.id, delivery.action, delivery.document)
        answer = {"accepted": True, "delivery": delivery.id, "document": delivery.document}
        return JSONResponse({**answer, "event": delivery.event}, status_code=202)

    def ignored(why: str) -> JSONResponse:
        log.info("ignored: %s", why)
        return JSONResponse({"ignored": why}, status_code=202)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        log.warning("%s %s refused (%d): %s", request.method, request.url.path, exc.status, exc)
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "ok": True,
            "github": hooks.github_secret is not None,
            "slack": hooks.slack_signing_secret is not None,
        }

    async def read(request: Request, secret: Any, who: str, setting: str) -> tuple[str, bytes]:
        """The secret and the raw body, or 503 when the secret is not set (no body is read)."""
        if secret is None:
            raise Refused(503, f"{who} deliveries are off here: set {setting}")
        return secret.get_secret_value(), await _body(request, hooks.max_body_bytes)

    @app.post("/webhooks/github")
    async def github(request: Request) -> JSONResponse:
        headers = request.headers
        secret, body = await read(request, hooks.github_secret, "GitHub", "MLSTACK_WEBHOOKS_GITHUB_SECRET")
        deliveries.verify_github(secret, body, headers.get("x-hub-signature-256"))
        found = deliveries.github(headers.get("x-github-event"), headers.get("x-github-delivery"), body)
        if found == "ping":
            return JSONResponse({"pong": True}, status_code=200)
        if isinstance(found, str):
            return ignored(found)
        return await run_in_threadpool(accept, found)

    @app.post("/webhooks/slack")
    async def slack(request: Request) -> JSONResponse:
        headers = request.headers
        setting = "MLSTACK_WEBHOOKS_SLACK_SIGNING_SECRET"
        secret, body = await read(request, hooks.slack_signing_secret, "Slack", setting)
        deliveries.verify_slack(
            secret,
            body,
            headers.get("x-slack-request-timestamp"),
            headers.get("x-slack-signature"),
            hooks.slack_max_age_s,
        )
        found = deliveries.slack(body)
        if isinstance(found, dict):  # url_verification: Slack expects its challenge back
            return JSONResponse(found, status_code=200)
        if isinstance(found, str):
            return ignored(found)
        return await run_in_threadpool(accept, found)

    return app


def serve(settings: Any, host: str, port: int, log_level: str = "info") -> None:
    import uvicorn

    from mlstack.deploy import api

    api.ensure_api()  # the Prefect API the events go to: `mlstack up`'s, PREFECT_API_URL, or the local one
    # Accepted and ignored deliveries are info lines: without a handler of its own only warnings
    # would reach the log (Python's last-resort handler).
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:  %(message)s"))
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(log_level.upper())
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)
