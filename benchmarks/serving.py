"""Online serving: /predict over loopback against the same work done in process.

Both sides do the same work per request: Feast online features, then the champion's predict.
- In process, two ways: one request after another as fast as it goes (the best case: warm
  caches, no gaps), and paced at `--rate` req/s on a fixed schedule.
- Over HTTP, `mlstack serve` in its own processes (`--workers`), two ways: `--clients`
  closed-loop clients (each sends when answered) for the most req/s, and open loop at `--rate`
  req/s, where requests go out on schedule whether or not earlier ones returned.
Paced latency counts from the scheduled send time, so a stalled side cannot hide its delay.
The headline `p50_ratio` is HTTP at `--rate` over the in-process tight loop: the best the
work alone can do, so the ratio is what serving adds. The paced in-process side is kept
apart (`p50_ratio_vs_paced`): a request every few milliseconds finds colder caches than a
tight loop, which flatters a ratio taken against it by about a quarter.
Last, the open loop again with `--hostile` of the requests (5%) broken or hostile: a driver id
past Int64, NaN and infinite distances, a zone that is a word, a missing field, not JSON. Every
good request must still be answered 200 (`hostile_good_failures`) and every bad one get its own
4xx (`hostile_not_4xx`): one bad request used to fail the micro-batch it joined.
The last line is JSON for machines; `rps` is the closed-loop throughput.
Targets (2 cores): p99_ms <= 10 at 300 req/s, p50_ratio <= 3, rps >= 300, errors 0; hostile_good_failures 0
and hostile_not_4xx 0 at 300 req/s with 5% hostile.

    python benchmarks/serving.py --seconds 15 --clients 16 --rate 300 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
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


def in_process(bodies: list[dict], seconds: float, rate: float | None = None) -> list[float]:
    """Latencies of predict() in this process: back to back, or paced at `rate` req/s."""
    from mlstack import features, tracking
    from models.serving.app import ChampionHolder, TripRequest, predict

    tracking.setup()
    holder = ChampionHolder()
    holder.refresh()
    store = features.feature_store()
    service = features.feature_service(store, features.STORED_SERVICE)
    requests = [TripRequest(**b) for b in bodies]
    for r in requests[:20]:  # warm up
        predict(store, holder, [r], service)
    latencies: list[float] = []
    start = time.perf_counter()
    for k in range(int(seconds * rate) if rate else sys.maxsize):
        scheduled = start + k / rate if rate else time.perf_counter()
        if not rate and scheduled > start + seconds:
            break
        if (delay := scheduled - time.perf_counter()) > 0:
            time.sleep(delay)
        predict(store, holder, [requests[k % len(requests)]], service)
        latencies.append(time.perf_counter() - scheduled)
    return latencies


def hostile_bodies(good: dict) -> list[bytes]:
    """Raw bodies a broken or hostile client sends, each refused on its own with a 4xx."""

    def spoiled(**fields: object) -> bytes:
        return json.dumps({**good, **fields}).encode()  # json writes NaN and Infinity as given

    return [
        spoiled(driver_id=10**30),
        spoiled(distance_km=float("nan")),
        spoiled(distance_km=float("inf")),
        spoiled(pickup_zone="downtown"),
        spoiled(passenger_count=-3),
        spoiled(requested_at="yesterday"),
        json.dumps({k: v for k, v in good.items() if k != "driver_id"}).encode(),
        b"{nope",
        b"[]",
    ]


async def at_rate_hostile(
    url: str, bodies: list[dict], seconds: float, rate: float, share: float
) -> tuple[int, int, int, int]:
    """Open loop with `share` of the requests hostile: (good sent, good not answered 200, hostile
    sent, hostile not answered 4xx)."""
    import aiohttp

    bad = hostile_bodies(bodies[0])
    every = max(1, round(1 / share))
    counts = {"good": 0, "good_failed": 0, "bad": 0, "bad_not_4xx": 0}
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession(base_url=url, connector=aiohttp.TCPConnector(limit=256)) as session:

        async def one(k: int) -> None:
            hostile = k % every == every - 1
            data = bad[(k // every) % len(bad)] if hostile else json.dumps(bodies[k % len(bodies)]).encode()
            try:
                async with session.post("/predict", data=data, headers=headers) as response:
                    await response.read()
                    status = response.status
            except aiohttp.ClientError:
                status = 0
            if hostile:
                counts["bad"] += 1
                counts["bad_not_4xx"] += not 400 <= status < 500
            else:
                counts["good"] += 1
                counts["good_failed"] += status != 200

        start = time.perf_counter()
        tasks = []
        for k in range(int(seconds * rate)):
            if (delay := start + k / rate - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(k)))
        await asyncio.gather(*tasks)
    return counts["good"], counts["good_failed"], counts["bad"], counts["bad_not_4xx"]


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
        for body in bodies[:20]:  # warm up
            await post_ok(session, body)

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
    parser.add_argument(
        "--workers", type=int, default=2, help="server worker processes (one per core; the target has 2)"
    )
    parser.add_argument("--rate", type=float, default=300.0, help="open-loop request rate (req/s)")
    parser.add_argument(
        "--hostile", type=float, default=0.05, help="share of broken or hostile requests in the last run"
    )
    args = parser.parse_args()

    prepared_home()
    import pandas as pd

    from mlstack import features

    online_until = (
        pd.read_parquet(features.offline_paths()["zone_hourly"], columns=["event_timestamp"]).max().iloc[0]
    )
    bodies = request_bodies((online_until - pd.Timedelta(minutes=30)).isoformat())

    console.print(f"in process, back to back for {args.seconds:.0f}s ...")
    tight_lat = in_process(bodies, args.seconds)
    console.print(f"in process, paced at {args.rate:.0f} req/s for {args.seconds:.0f}s ...")
    paced_lat = in_process(bodies, args.seconds, args.rate)
    port = free_port()
    console.print(f"starting mlstack serve on :{port} with {args.workers} worker(s) ...")
    server = start_server(port, args.workers)
    url = f"http://127.0.0.1:{port}"
    try:
        console.print(f"open loop at {args.rate:.0f} req/s for {args.seconds:.0f}s ...")
        rate_lat, rate_errors = asyncio.run(at_rate(url, bodies, args.seconds, args.rate))
        console.print(f"{args.clients} closed-loop clients over HTTP for {args.seconds:.0f}s ...")
        sat_lat, sat_errors = asyncio.run(over_http(url, bodies, args.seconds, args.clients))
        console.print(
            f"open loop at {args.rate:.0f} req/s, {args.hostile:.0%} hostile, for {args.seconds:.0f}s ..."
        )
        good, good_failed, bad, bad_not_4xx = asyncio.run(
            at_rate_hostile(url, bodies, args.seconds, args.rate, args.hostile)
        )
    finally:
        server.terminate()
        server.wait(timeout=30)

    tight, paced = summarize(tight_lat), summarize(paced_lat)
    sat, at = summarize(sat_lat), summarize(rate_lat)
    result = {
        "bench": "serving",
        "p50_ratio": round(at["p50_ms"] / tight["p50_ms"], 3),
        "p99_ms": at["p99_ms"],
        "rps": round(len(sat_lat) / args.seconds, 1),
        "errors": sat_errors + rate_errors,
        "rate": args.rate,
        "p50_ratio_vs_paced": round(at["p50_ms"] / paced["p50_ms"], 3),
        "hostile_share": args.hostile,
        "hostile_good": good,
        "hostile_good_failures": good_failed,
        "hostile_sent": bad,
        "hostile_not_4xx": bad_not_4xx,
        "in_process_rps": round(len(tight_lat) / args.seconds, 1),
        "clients": args.clients,
        "workers": args.workers,
        "in_process": tight,
        "in_process_paced": paced,
        "saturated": sat,
        "at_rate": at,
    }

    def row(side: str, stats: dict, latencies: list[float], errors: int) -> tuple[str, ...]:
        rps = len(latencies) / args.seconds
        return (side, f"{stats['p50_ms']:.2f}", f"{stats['p99_ms']:.2f}", f"{rps:.0f}", str(errors))

    report(
        "serving: /predict over loopback vs in process",
        [
            row("in process, back to back", tight, tight_lat, 0),
            row(f"in process, paced at {args.rate:.0f} req/s", paced, paced_lat, 0),
            row(f"HTTP, {args.clients} closed-loop clients", sat, sat_lat, sat_errors),
            row(f"HTTP, open loop at {args.rate:.0f} req/s", at, rate_lat, rate_errors),
        ],
        ("side", "p50 ms", "p99 ms", "req/s", "errors"),
        result,
        extra=[
            (
                f"open loop at {args.rate:.0f} req/s with {args.hostile:.0%} hostile requests",
                [
                    ("good requests", str(good)),
                    ("good ones not answered 200", str(good_failed)),
                    ("hostile requests", str(bad)),
                    ("hostile ones not answered 4xx", str(bad_not_4xx)),
                ],
            )
        ],
    )


if __name__ == "__main__":
    main()
