"""Prometheus `/metrics` for both servers: request counts by handler, method and status (errors
are the 4xx and 5xx series), latency histograms and payload sizes, from
prometheus-fastapi-instrumentator.

Each app gets a registry of its own, so that a process holding two apps (the tests, a notebook)
does not register one series twice. With several uvicorn workers each worker counts its own
requests; set PROMETHEUS_MULTIPROC_DIR to have them add up, as prometheus_client documents.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

METRICS_PATH = "/metrics"


def instrument(app: FastAPI) -> None:
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_fastapi_instrumentator import Instrumentator

    shared = "PROMETHEUS_MULTIPROC_DIR" in os.environ
    Instrumentator(
        excluded_handlers=[METRICS_PATH],
        registry=REGISTRY if shared else CollectorRegistry(),
    ).instrument(app).expose(app, endpoint=METRICS_PATH, include_in_schema=False)
