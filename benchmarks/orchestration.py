"""What Prefect costs: the training flow under Prefect against the same building blocks in plain
Python, on the same data with the same parameters.

Both sides run the same steps: point-in-time training set from Feast, Optuna trials logged to
MLflow, registration and the gate. The Prefect side runs on an already started API (the one-off
start of the ephemeral server is reported apart, as `cold_start_s`). Sides alternate and each
reports its best time. The last line is JSON; target: prefect_over_plain <= 1.15.

    python benchmarks/orchestration.py            # the training configured in params.yaml
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import console, prepared_home, report


def plain(trials: int) -> None:
    from mlstack import features, registry, tracking
    from mlstack.data import validation
    from mlstack.features import LABEL
    from mlstack.params import data_version, load_params
    from mlstack.settings import get_settings
    from models.tabular import registry as tabular_registry
    from models.tabular.train import features_of, train

    settings = get_settings()
    validated = settings.validated_dir
    params = load_params()["train"]
    frame = features.historical_features(
        features.feature_store(), validation.read_validated(validated)["trips"]
    )
    tracking.setup()
    result = train(
        frame,
        params["search_space"],
        trials,
        params["seed"],
        params["split"],
        data_version=data_version(validated),
    )
    version = registry.register(result.model_uri, result.run_id)
    test = result.splits.test
    tabular_registry.gate(version, features_of(test), test[LABEL], settings.tracking.promotion_margin)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--trials", type=int, default=None, help="Optuna trials per run (default: params.yaml)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per side")
    args = parser.parse_args()

    prepared_home()
    import mlstack.bootstrap  # noqa: F401

    from mlstack.params import load_params

    trials = args.trials or load_params()["train"]["n_trials"]

    from prefect import flow

    from flows.training import TrainingParams, training_flow

    @flow
    def warm_up() -> None:
        """Starts the ephemeral API, which the training flow then reuses."""

    t0 = time.perf_counter()
    warm_up()
    cold_start = time.perf_counter() - t0
    plain(1)  # warm the plain side's imports and caches the same way

    times: dict[str, list[float]] = {"plain": [], "prefect": []}
    for round_ in range(args.rounds):
        for side in ("plain", "prefect"):
            console.print(f"round {round_ + 1}: {side} ...")
            t0 = time.perf_counter()
            if side == "plain":
                plain(trials)
            else:
                training_flow(TrainingParams(n_trials=trials))
            times[side].append(time.perf_counter() - t0)

    best = {side: min(values) for side, values in times.items()}
    result = {
        "bench": "orchestration",
        "prefect_over_plain": round(best["prefect"] / best["plain"], 3),
        "plain_s": round(best["plain"], 2),
        "prefect_s": round(best["prefect"], 2),
        "cold_start_s": round(cold_start, 2),
        "trials": trials,
        "rounds": args.rounds,
    }
    report(
        "training: Prefect flow vs plain Python (best of each)",
        [
            ("plain Python", f"{best['plain']:.2f}", ", ".join(f"{t:.1f}" for t in times["plain"])),
            ("Prefect flow", f"{best['prefect']:.2f}", ", ".join(f"{t:.1f}" for t in times["prefect"])),
            ("ephemeral API start (once)", f"{cold_start:.2f}", ""),
        ],
        ("side", "best s", "all runs s"),
        result,
    )


if __name__ == "__main__":
    main()
