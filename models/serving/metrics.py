"""Prometheus `/metrics` for both servers: request counts by handler, method and status (errors
are the 4xx and 5xx series), latency histograms and payload sizes, from
prometheus-fastapi-instrumentator.

Each app counts into a registry of its own, which its `/metrics` serves. Not the instrumentator's
own endpoint: it switches to prometheus_client's multiprocess collector whenever
PROMETHEUS_MULTIPROC_DIR is set, and importing Feast sets that variable to an empty folder of
its own, so the trip server's metrics vanished from it. With several uvicorn workers, each
worker counts its own requests: scrape each, or run one worker per container.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response

METRICS_PATH = "/metrics"


def instrument(app: FastAPI) -> Any:
    """Count the app's requests into a registry of its own, served at /metrics; the registry,
    for the app's own metrics."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_fastapi_instrumentator import Instrumentator

    registry = CollectorRegistry()
    Instrumentator(excluded_handlers=[METRICS_PATH], registry=registry).instrument(app)

    @app.get(METRICS_PATH, include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return registry
