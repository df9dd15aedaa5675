"""Batch scoring as `predict-batch` does it against what a user would hand-write instead.

mlstack: the window's Feast point-in-time retrieval (DuckDB offline store), the champion's
predict, then the same writes `predict-batch` makes (the window's rows replaced in Postgres in
one transaction, and its parquet file).
Baseline: one DuckDB `ASOF JOIN` of the trips onto the feature parquet files (with the views'
3 h TTL), the request-time features, the same predict and the same writes.
Both sides must give the same predictions (`same_predictions`), or the comparison means nothing.
One request at a time through the online path is reported too, as the price of not batching.
The last line is JSON; target: batch_over_baseline >= 0.5 (rows/s, writes included on both sides).

    python benchmarks/batch_inference.py --online-seconds 10
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import console, prepared_home, report

# The baseline's point-in-time join: the newest feature row at or before the request (`created`
# breaks ties between rows of one timestamp); rows past the views' TTL are dropped after it, as
# DuckDB's ASOF JOIN takes one inequality.
ASOF_SQL = """
WITH driver AS (SELECT * FROM read_parquet($driver) ORDER BY driver_id, event_timestamp, created),
     zone AS (SELECT * FROM read_parquet($zone) ORDER BY zone_id, event_timestamp, created)
SELECT t.trip_id, t.requested_at, d.event_timestamp AS driver_hourly__ts,
       p.event_timestamp AS pickup_zone__ts, o.event_timestamp AS dropoff_zone__ts,
       d.avg_speed_kmh AS driver_hourly__avg_speed_kmh,
       d.acceptance_rate AS driver_hourly__acceptance_rate,
       d.rating AS driver_hourly__rating,
       d.trips_today AS driver_hourly__trips_today,
       d.pace_7d_s_per_km AS driver_hourly__pace_7d_s_per_km,
       p.congestion_index AS pickup_zone__congestion_index,
       p.avg_speed_kmh AS pickup_zone__avg_speed_kmh,
       p.demand_1h AS pickup_zone__demand_1h,
       o.congestion_index AS dropoff_zone__congestion_index,
       o.avg_speed_kmh AS dropoff_zone__avg_speed_kmh,
       o.demand_1h AS dropoff_zone__demand_1h
FROM trips t
ASOF LEFT JOIN driver d ON t.driver_id = d.driver_id AND t.requested_at >= d.event_timestamp
ASOF LEFT JOIN zone p ON t.pickup_zone = p.zone_id AND t.requested_at >= p.event_timestamp
ASOF LEFT JOIN zone o ON t.dropoff_zone = o.zone_id AND t.requested_at >= o.event_timestamp
"""
TTL = timedelta(hours=3)  # feature_repo/definitions.py: both views


def baseline_score(trips, champion):
    """The hand-written path: ASOF JOIN in DuckDB, request features, predict."""
    import duckdb
    import pandas as pd

    from mlstack import features
    from models.tabular.predict import predictions

    paths = features.offline_paths()
    with duckdb.connect() as con:
        con.register("trips", trips[features.ENTITY_COLUMNS])
        joined = con.execute(
            ASOF_SQL, {"driver": str(paths["driver_hourly"]), "zone": str(paths["zone_hourly"])}
        ).df()
    for view in ("driver_hourly", "pickup_zone", "dropoff_zone"):
        stale = joined[f"{view}__ts"] <= joined["requested_at"] - TTL
        joined.loc[stale, [c for c in joined if c.startswith(f"{view}__")]] = None
    frame = trips.merge(joined.drop(columns="requested_at"), on="trip_id", how="left")
    request = features.request_features(frame).add_prefix(f"{features.REQUEST_VIEW}__")
    frame = pd.concat([frame, request], axis=1)
    return predictions(frame, champion)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--online-seconds", type=float, default=10.0, help="how long to run the online side")
    parser.add_argument("--repeats", type=int, default=3, help="batch runs; the median is reported")
    args = parser.parse_args()

    prepared_home()

    import numpy as np
    import pandas as pd

    from mlstack import features, tracking
    from mlstack.data import validation
    from mlstack.settings import get_settings
    from models.serving.app import ChampionHolder, TripRequest, predict
    from models.tabular.predict import load_champion, score, write_predictions

    tracking.setup()
    settings = get_settings()
    store = features.feature_store(settings)
    trips = validation.read_validated(settings.validated_dir)["trips"]
    champion = load_champion()
    start, end = trips["requested_at"].min(), trips["requested_at"].max() + pd.Timedelta(seconds=1)

    def ours():
        return write_predictions(score(store, trips, champion), start, end, settings), len(trips)

    def theirs():
        scored = baseline_score(trips, champion)
        return write_predictions(scored, start, end, settings), len(scored)

    # Warm up both: imports, registry, DuckDB, the predictions table.
    score(store, trips.head(200), champion), baseline_score(trips.head(200), champion)
    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    for round_ in range(args.repeats):
        for side, run in (("ours", ours), ("baseline", theirs)):
            console.print(f"round {round_ + 1}: {side} ...")
            t0 = time.perf_counter()
            _, rows = run()
            times[side].append(time.perf_counter() - t0)
    batch_s, baseline_s = (sorted(times[side])[len(times[side]) // 2] for side in ("ours", "baseline"))
    batch_rps, baseline_rps = rows / batch_s, rows / baseline_s
    mine = score(store, trips, champion).set_index("trip_id")["predicted_duration_s"]
    hand = baseline_score(trips, champion).set_index("trip_id")["predicted_duration_s"]
    mismatched = int((~np.isclose(mine, hand.loc[mine.index], atol=0.05)).sum())

    t0 = time.perf_counter()
    frame = features.historical_features(store, trips)
    retrieval_s = time.perf_counter() - t0

    holder = ChampionHolder()
    holder.refresh()
    service = features.feature_service(store, features.STORED_SERVICE)
    requests = [
        TripRequest(
            driver_id=int(t.driver_id),
            pickup_zone=int(t.pickup_zone),
            dropoff_zone=int(t.dropoff_zone),
            distance_km=float(t.distance_km),
            requested_at=t.requested_at,
        )
        for t in trips.tail(2000).itertuples()
    ]
    predict(store, holder, requests[:1], service)
    console.print(f"online side for {args.online_seconds:.0f}s ...")
    done, deadline = 0, time.perf_counter() + args.online_seconds
    t0 = time.perf_counter()
    while time.perf_counter() < deadline:
        predict(store, holder, [requests[done % len(requests)]], service)
        done += 1
    online_rps = done / (time.perf_counter() - t0)

    result = {
        "bench": "batch_inference",
        "batch_over_baseline": round(batch_rps / baseline_rps, 3),
        "batch_rows_per_s": round(batch_rps, 1),
        "baseline_rows_per_s": round(baseline_rps, 1),
        "batch_rows": rows,
        "batch_s": round(batch_s, 3),
        "baseline_s": round(baseline_s, 3),
        "feast_retrieval_s": round(retrieval_s, 3),
        "same_predictions": mismatched == 0,
        "mismatched_predictions": mismatched,
        "batch_over_online": round(batch_rps / online_rps, 1),
        "online_rows_per_s": round(online_rps, 1),
    }
    report(
        f"batch scoring: same champion, same window ({mismatched} predictions differ)",
        [
            (
                "mlstack: Feast point in time + predict + writes",
                f"{rows:,}",
                f"{batch_s:.2f}",
                f"{batch_rps:,.0f}",
            ),
            ("  of which Feast's retrieval", f"{len(frame):,}", f"{retrieval_s:.2f}", ""),
            ("DuckDB ASOF JOIN + predict + writes", f"{rows:,}", f"{baseline_s:.2f}", f"{baseline_rps:,.0f}"),
            ("online (one trip at a time)", f"{done:,}", f"{args.online_seconds:.2f}", f"{online_rps:,.0f}"),
        ],
        ("side", "rows", "seconds", "rows/s"),
        result,
    )


if __name__ == "__main__":
    main()
