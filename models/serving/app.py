"""Online serving for trip_duration: FastAPI, Feast online features, the registry's champion.

POST /predict takes a trip request, reads the driver's and both zones' latest features from
Feast's online store (plus the request-time features of the on-demand view), and answers with
the champion's prediction and its version. A background check follows the `champion` alias,
so a promotion or rollback takes effect without a restart.

Unknown drivers or zones are not errors: their features are missing, the model (gradient
boosting with native missing-value support, trained with such rows) predicts from what it has,
and the response lists the missing groups in `fallback`.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import threading
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from mlstack import features, registry, tracking
from mlstack.data.generator import N_ZONES
from mlstack.settings import MODEL_NAME, Settings, get_settings
from models.serving.metrics import instrument
from models.tabular import registry as tabular_registry
from models.tabular.compiled import compile_model

FALLBACK_GROUPS = {
    "driver": [f for f in features.FEAST_FEATURES if f.startswith("driver_hourly__")],
    "pickup_zone": [f for f in features.FEAST_FEATURES if f.startswith("pickup_zone__")],
    "dropoff_zone": [f for f in features.FEAST_FEATURES if f.startswith("dropoff_zone__")],
}


class TripRequest(BaseModel):
    """A trip about to start."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "driver_id": 17,
                    "pickup_zone": 3,
                    "dropoff_zone": 12,
                    "distance_km": 6.4,
                    "passenger_count": 1,
                }
            ]
        },
    )

    # Bounded by Feast's Int64 entity key: 1e30 passed as an int and failed the lookup of the
    # whole micro-batch it joined.
    driver_id: Annotated[
        int, Field(ge=1, le=2**63 - 1, description="Driver id; unknown ids get the fallback.")
    ]
    pickup_zone: Annotated[int, Field(ge=1, le=N_ZONES, description=f"Zone id, 1 to {N_ZONES}.")]
    dropoff_zone: Annotated[int, Field(ge=1, le=N_ZONES, description=f"Zone id, 1 to {N_ZONES}.")]
    distance_km: Annotated[
        float, Field(gt=0, le=300, allow_inf_nan=False, description="Planned route length.")
    ]
    passenger_count: Annotated[int | None, Field(default=None, ge=1, le=8)] = None
    requested_at: AwareDatetime = Field(
        default_factory=lambda: datetime.now(UTC),
        description="When the trip is requested, with a time zone. Default: now.",
    )


class TripPrediction(BaseModel):
    predicted_duration_s: float
    model_version: str
    fallback: list[str] = Field(
        description="Feature groups missing from the online store (unknown driver or zone); "
        "the model predicted without them."
    )


class ChampionHolder:
    """The champion model, swapped atomically when the alias moves."""

    def __init__(self, name: str = MODEL_NAME) -> None:
        self.name = name
        self.version: str | None = None
        self.model: Any = None
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """Load the champion if it changed; True when a new one was loaded."""
        version = registry.alias_version(registry.CHAMPION, self.name)
        if version is None or version == self.version:
            return False
        # Load and compile outside the lock; swap inside it. Compiled trees answer small batches
        # several times faster than sklearn's tree-by-tree loop, with the same numbers.
        model = compile_model(tabular_registry.load(version, self.name))
        with self._lock:
            self.model, self.version = model, version
        return True

    def current(self) -> tuple[Any, str]:
        with self._lock:
            if self.model is None:
                raise HTTPException(503, detail=f"no champion for {self.name} yet: run `mlstack train`")
            return self.model, self.version  # type: ignore[return-value]


class ServingLog:
    """Inputs and predictions as JSON lines: what drift monitoring reads as the online window."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.serving_log
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write_batch(
        self, requests: list[TripRequest], x: pd.DataFrame, results: list[TripPrediction]
    ) -> None:
        logged_at = datetime.now(UTC).isoformat()
        columns = list(x.columns)
        lines = []
        for request, values, result in zip(requests, x.to_numpy().tolist(), results, strict=True):
            record = {
                "logged_at": logged_at,
                "driver_id": request.driver_id,
                "requested_at": request.requested_at.isoformat(),
                **{k: (None if v != v else v) for k, v in zip(columns, values, strict=True)},  # NaN -> null
                "predicted_duration_s": result.predicted_duration_s,
                "model_version": result.model_version,
                "fallback": result.fallback,
            }
            lines.append(json.dumps(record) + "\n")
        with self._lock, self.path.open("a") as handle:
            handle.writelines(lines)


def model_input(requests: list[TripRequest], online: pd.DataFrame) -> pd.DataFrame:
    """The model's columns: request fields, then the online features (FEAST_FEATURES, in order)."""
    request_part = np.array(
        [
            [
                r.distance_km,
                np.nan if r.passenger_count is None else r.passenger_count,
                r.pickup_zone,
                r.dropoff_zone,
            ]
            for r in requests
        ],
        dtype=np.float64,
    )
    return pd.DataFrame(
        np.hstack([request_part, online.to_numpy(dtype=np.float64)]), columns=features.MODEL_FEATURES
    )


_GROUP_COLUMNS = {
    group: [features.MODEL_FEATURES.index(c) for c in cols] for group, cols in FALLBACK_GROUPS.items()
}


def fallbacks(x: pd.DataFrame) -> list[list[str]]:
    """Per row, the feature groups that came back entirely missing."""
    missing = np.isnan(x.to_numpy())
    flags = {group: missing[:, cols].all(axis=1) for group, cols in _GROUP_COLUMNS.items()}
    return [[group for group, rows in flags.items() if rows[i]] for i in range(len(x))]


def predict(
    store: Any, holder: ChampionHolder, requests: list[TripRequest], service: Any = None
) -> tuple[list[TripPrediction], pd.DataFrame]:
    """Predictions for the requests, and the model input they were made from."""
    rows = [
        {
            "driver_id": r.driver_id,
            "pickup_zone": r.pickup_zone,
            "dropoff_zone": r.dropoff_zone,
            "requested_at": r.requested_at,
            "distance_km": r.distance_km,
        }
        for r in requests
    ]
    x = model_input(requests, features.online_features(store, rows, service))
    model, version = holder.current()
    predicted = model.predict(x)
    results = [
        TripPrediction(predicted_duration_s=round(float(p), 1), model_version=version, fallback=fb)
        for p, fb in zip(predicted, fallbacks(x), strict=True)
    ]
    return results, x


class MicroBatcher:
    """Serve concurrent requests with one feature lookup and one model call per batch.

    Both Feast's lookup and the model's predict cost about the same for one row as for dozens,
    so under load batching multiplies throughput. It adds no wait: a batch is whatever queued
    while the previous one ran, so a lone request goes straight through.

    The work (about 1.5 ms for one row) runs on the event loop, not in a thread: a worker
    thread fights the loop for the GIL, and at 300 req/s over two worker processes that cost
    more latency than it saved (p50 3.9-6.3 ms inline vs 5.2-12.3 ms threaded, with the open-loop
    client of benchmarks/serving.py). Use one `--workers` process per core for parallelism.
    """

    def __init__(self, work: Any, max_batch: int = 64) -> None:
        self.work = work
        self.max_batch = max_batch
        self.queue: asyncio.Queue[tuple[TripRequest, asyncio.Future[TripPrediction]]] = asyncio.Queue()

    async def submit(self, request: TripRequest) -> TripPrediction:
        future: asyncio.Future[TripPrediction] = asyncio.get_running_loop().create_future()
        await self.queue.put((request, future))
        return await future

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.max_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                results = self.work([request for request, _ in batch])
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0][1], exc=exc)
                    continue
                # One request's failure is not its neighbours': each goes again on its own, so
                # only the request that fails alone gets an error (and only its own).
                for request, future in batch:
                    try:
                        [result] = self.work([request])
                    except Exception as alone:
                        _settle(future, exc=alone)
                    else:
                        _settle(future, result=result)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                _settle(future, result=result)


def _settle(
    future: asyncio.Future[TripPrediction], result: TripPrediction | None = None, exc: Exception | None = None
) -> None:
    if future.done():  # the client went away
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]


class TripPredictor:
    """What POST /predict does, callable without HTTP: Feast online features, the champion's
    prediction, and a line in the serving log for monitoring."""

    def __init__(self, settings: Settings | None = None, model_name: str = MODEL_NAME) -> None:
        self.settings = settings or get_settings()
        self.holder = ChampionHolder(model_name)
        self.log = ServingLog(self.settings)
        self.store: Any = None
        self.service: Any = None

    def load(self) -> TripPredictor:
        """Open the feature store and load the champion (slow: do it once, at startup)."""
        tracking.setup(self.settings)
        self.store = features.feature_store(self.settings)
        self.service = features.feature_service(self.store, features.STORED_SERVICE)
        self.holder.refresh()
        return self

    def __call__(self, requests: list[TripRequest]) -> list[TripPrediction]:
        try:
            results, x = predict(self.store, self.holder, requests, self.service)
        except HTTPException:
            raise
        except Exception as exc:
            raise HTTPException(503, detail=f"prediction failed: {exc}") from exc
        self.log.write_batch(requests, x, results)
        return results


def create_app(settings: Settings | None = None, model_name: str = MODEL_NAME) -> FastAPI:
    settings = settings or get_settings()
    predictor = TripPredictor(settings, model_name)
    holder = predictor.holder
    batcher = MicroBatcher(predictor)

    async def follow_champion() -> None:
        while True:
            await asyncio.sleep(settings.serving.reload_s)
            try:
                await asyncio.to_thread(holder.refresh)
            except Exception:  # the registry may be briefly unreachable; keep serving the current model
                continue

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        predictor.load()
        # What is loaded now lives as long as the server: Feast, MLflow and pandas leave about
        # 560k objects, and a full collection walking them stalls every request for ~280 ms.
        gc.collect()
        gc.freeze()
        tasks = [asyncio.create_task(follow_champion()), asyncio.create_task(batcher.run())]
        yield
        for task in tasks:
            task.cancel()

    app = FastAPI(title="mlstack trip duration", version="1", description=__doc__, lifespan=lifespan)
    instrument(app)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes each input, and a NaN or an infinity is not JSON: the
        # refusal itself failed with a 500.
        return JSONResponse(status_code=422, content={"detail": _json_safe(jsonable_encoder(exc.errors()))})

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness and what is being served."""
        return {
            "status": "ok" if holder.version else "no_model",
            "model": MODEL_NAME,
            "version": holder.version,
        }

    @app.post("/predict", response_model=TripPrediction)
    async def predict_one(request: TripRequest) -> TripPrediction:
        """Predict one trip's duration in seconds."""
        return await batcher.submit(request)

    return app


def _json_safe(value: Any) -> Any:
    """The value with every NaN and infinity written as text, so that it can be sent as JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value
