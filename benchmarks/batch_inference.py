"""Batch against online inference: rows per second for the same champion and the same features.

Batch: one point-in-time Feast retrieval for a window of trips, then one predict call.
Online: the serving path in process, one trip at a time (Feast online lookup, then predict).
The last line is JSON; target: batch_over_online >= 50.

    python benchmarks/batch_inference.py --online-seconds 10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import console, prepared_home, report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--online-seconds", type=float, default=10.0, help="how long to run the online side")
    parser.add_argument("--repeats", type=int, default=3, help="batch runs; the median is reported")
    args = parser.parse_args()

    prepared_home()

    from mlstack import features, tracking
    from mlstack.data import validation
    from mlstack.settings import get_settings
    from models.serving.app import ChampionHolder, TripRequest, predict
    from models.tabular.predict import load_champion, score

    tracking.setup()
    settings = get_settings()
    store = features.feature_store(settings)
    trips = validation.read_validated(settings.validated_dir)["trips"]
    champion = load_champion()

    score(store, trips.head(100), champion)  # warm up: imports, registry, DuckDB
    batch_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        scored = score(store, trips, champion)
        batch_times.append(time.perf_counter() - t0)
    batch_s = sorted(batch_times)[len(batch_times) // 2]
    batch_rps = len(scored) / batch_s

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
        "batch_over_online": round(batch_rps / online_rps, 1),
        "batch_rows_per_s": round(batch_rps, 1),
        "online_rows_per_s": round(online_rps, 1),
        "batch_rows": len(scored),
        "batch_s": round(batch_s, 3),
    }
    report(
        "batch vs online inference (same champion, same features)",
        [
            (
                "batch (Feast historical + one predict)",
                f"{len(scored):,}",
                f"{batch_s:.2f}",
                f"{batch_rps:,.0f}",
            ),
            ("online (one trip at a time)", f"{done:,}", f"{args.online_seconds:.2f}", f"{online_rps:,.0f}"),
        ],
        ("side", "rows", "seconds", "rows/s"),
        result,
    )


if __name__ == "__main__":
    main()
