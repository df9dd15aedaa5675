"""Online serving: /predict over loopback against the same work done in process.

Baseline: one request at a time, in process: Feast online features, then the champion's predict.
Project: `mlstack serve` in its own process, over HTTP, measured two ways for a fixed time each:
- saturation: `--clients` closed-loop clients (each sends when answered), for the most req/s;
- at rate: requests fired on a fixed schedule at `--rate` req/s (open loop), for latency at
  that load; latency counts from the scheduled send time, so a stalled server cannot hide delay.
Prints p50/p99, req/s and errors for each; the last line is JSON for machines, where `rps` is
the saturation throughput and `p50_ratio` the latency at `--rate` over the in-process p50.
Targets (2 cores): p50_ratio <= 3 at 300 req/s, rps >= 300, errors 0.

    python benchmarks/serving.py --seconds 15 --clients 16 --rate 300
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import console, prepared_home, report, summarize


def request_bodies(at: str, n: int = 500, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [
        {
            "driver_id": rng.randint(1, 200),
            "pickup_zone": rng.randint(1, 24),
            "dropoff_zone": rng.randint(1, 24),
            "distance_km": round(rng.uniform(1, 25), 2),
            "passenger_count": rng.randint(1, 4),
            "requested_at": at,
        }
        for _ in range(n)
    ]


def in_process(bodies: list[dict], seconds: float) -> tuple[list[float], int]:
    from mlstack import features, tracking
    from models.serving.app import ChampionHolder, TripRequest, predict

    tracking.setup()
    holder = ChampionHolder()
    holder.refresh()
    store = features.feature_store()
    service = features.feature_service(store)
    requests = [TripRequest(**b) for b in bodies]
    for r in requests[:20]:  # warm up
        predict(store, holder, [r], service)
    latencies, deadline, i = [], time.perf_counter() + seconds, 0
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        predict(store, holder, [requests[i % len(requests)]], service)
        latencies.append(time.perf_counter() - t0)
        i += 1
    return latencies, 0


async def post_ok(session, body: dict) -> bool:
    """One /predict call; True when it was answered 200."""
    import aiohttp

    try:
        async with session.post("/predict", json=body) as response:
            await response.read()
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def over_http(url: str, bodies: list[dict], seconds: float, clients: int) -> tuple[list[float], int]:
    """Closed-loop load: each client sends its next request when the last one is answered.

    aiohttp rather than httpx: the load generator shares the 2 cores with the server, and
    aiohttp spends about a third of the CPU per request that httpx does.
    """
    import aiohttp

    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(base_url=url, connector=connector) as session:
        for body in bodies[:20]:  # warm up
            await post_ok(session, body)
        deadline = time.perf_counter() + seconds

        async def worker(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                ok = await post_ok(session, bodies[i % len(bodies)])
                latencies.append(time.perf_counter() - t0)
                errors += not ok
                i += clients

        await asyncio.gather(*(worker(k) for k in range(clients)))
    return latencies, errors


async def at_rate(url: str, bodies: list[dict], seconds: float, rate: float) -> tuple[list[float], int]:
    """Open-loop load: request k is sent at start + k/rate whether or not earlier ones returned."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(base_url=url, connector=aiohttp.TCPConnector(limit=256)) as session:

        async def one(k: int, scheduled: float) -> None:
            nonlocal errors
            ok = await post_ok(session, bodies[k % len(bodies)])
            latencies.append(time.perf_counter() - scheduled)
            errors += not ok

        start = time.perf_counter()
        tasks = []
        for k in range(int(seconds * rate)):
            scheduled = start + k / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(k, scheduled)))
        await asyncio.gather(*tasks)
    return latencies, errors


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, workers: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "mlstack.cli", "serve", "--port", str(port), "--workers", str(workers)],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json().get("version"):
                return server
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"server exited: {server.stderr.read().decode()[-2000:]}")
        time.sleep(0.5)
    server.kill()
    raise RuntimeError("server did not become healthy within 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="duration of each side")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--rate", type=float, default=300.0, help="open-loop request rate (req/s)")
    args = parser.parse_args()

    prepared_home()
    import pandas as pd

    from mlstack import features

    online_until = (
        pd.read_parquet(features.offline_paths()["zone_hourly"], columns=["event_timestamp"]).max().iloc[0]
    )
    bodies = request_bodies((online_until - pd.Timedelta(minutes=30)).isoformat())

    console.print(f"in-process baseline for {args.seconds:.0f}s ...")
    base_lat, _ = in_process(bodies, args.seconds)
    port = free_port()
    console.print(f"starting mlstack serve on :{port} ...")
    server = start_server(port, args.workers)
    url = f"http://127.0.0.1:{port}"
    try:
        console.print(f"{args.clients} closed-loop clients over HTTP for {args.seconds:.0f}s ...")
        sat_lat, sat_errors = asyncio.run(over_http(url, bodies, args.seconds, args.clients))
        console.print(f"open loop at {args.rate:.0f} req/s for {args.seconds:.0f}s ...")
        rate_lat, rate_errors = asyncio.run(at_rate(url, bodies, args.seconds, args.rate))
    finally:
        server.terminate()
        server.wait(timeout=30)

    base, sat, at = summarize(base_lat), summarize(sat_lat), summarize(rate_lat)
    base_rps = len(base_lat) / args.seconds
    sat_rps = len(sat_lat) / args.seconds
    result = {
        "bench": "serving",
        "p50_ratio": round(at["p50_ms"] / base["p50_ms"], 3),
        "rps": round(sat_rps, 1),
        "errors": sat_errors + rate_errors,
        "rate": args.rate,
        "p50_ratio_saturated": round(sat["p50_ms"] / base["p50_ms"], 3),
        "baseline_rps": round(base_rps, 1),
        "clients": args.clients,
        "workers": args.workers,
        "in_process": base,
        "saturated": sat,
        "at_rate": at,
    }
    report(
        "serving: /predict over loopback vs in process",
        [
            (
                "in process, 1 at a time",
                f"{base['p50_ms']:.2f}",
                f"{base['p99_ms']:.2f}",
                f"{base_rps:.0f}",
                "0",
            ),
            (
                f"HTTP, {args.clients} closed-loop clients",
                f"{sat['p50_ms']:.2f}",
                f"{sat['p99_ms']:.2f}",
                f"{sat_rps:.0f}",
                str(sat_errors),
            ),
            (
                f"HTTP, open loop at {args.rate:.0f} req/s",
                f"{at['p50_ms']:.2f}",
                f"{at['p99_ms']:.2f}",
                f"{len(rate_lat) / args.seconds:.0f}",
                str(rate_errors),
            ),
        ],
        ("side", "p50 ms", "p99 ms", "req/s", "errors"),
        result,
    )


if __name__ == "__main__":
    main()
