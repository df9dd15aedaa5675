"""Drift check speed: mlstack's Evidently-based check against a plain scipy KS + PSI loop.

Both judge the same 20 numeric columns of a synthetic reference and current window (the
current one shifted in 5 columns) at 10k, 100k and 1M rows each. mlstack's side is
`monitoring.drift.data_drift`: Evidently's DataDriftPreset with per-column verdicts, the share
of drifted columns and the HTML-ready snapshot; above 100k rows a side it judges a fixed-seed
uniform sample of 100k (MLSTACK_MONITORING_DRIFT_SAMPLE_ROWS; `--no-sample` measures every row). The
baseline computes a two-sample KS test and a 10-bin PSI per column and nothing else. The last
line is JSON; targets: rows_100k_s <= 30 and scaling_1m_over_100k <= 12 (about linear).

    python benchmarks/drift.py              # 10k, 100k, 1M
    python benchmarks/drift.py --sizes 10000 100000
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import console, report

N_COLUMNS = 20
SHIFTED = 5


def frames(rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    rng = np.random.default_rng(seed)
    columns = [f"x{i:02d}" for i in range(N_COLUMNS)]
    reference = pd.DataFrame({c: rng.gamma(2.0 + i % 4, 1.0, rows) for i, c in enumerate(columns)})
    current = pd.DataFrame(
        {c: rng.gamma(2.0 + i % 4, 1.0, rows) * (1.3 if i < SHIFTED else 1.0) for i, c in enumerate(columns)}
    )
    return reference, current, columns


def baseline(reference: pd.DataFrame, current: pd.DataFrame, columns: list[str]) -> int:
    """KS p-value < 0.05 or PSI >= 0.2 counts as drift; returns the drifted-column count."""
    from scipy.stats import ks_2samp

    drifted = 0
    for column in columns:
        ref, cur = reference[column].to_numpy(), current[column].to_numpy()
        p_value = ks_2samp(ref, cur).pvalue
        edges = np.quantile(ref, np.linspace(0, 1, 11))
        edges[0], edges[-1] = -np.inf, np.inf
        expected = np.histogram(ref, edges)[0] / len(ref) + 1e-6
        actual = np.histogram(cur, edges)[0] / len(cur) + 1e-6
        psi = float(np.sum((actual - expected) * np.log(actual / expected)))
        drifted += p_value < 0.05 or psi >= 0.2
    return drifted


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000], help="rows per side"
    )
    parser.add_argument(
        "--no-sample",
        action="store_true",
        help="judge every row (MLSTACK_MONITORING_DRIFT_SAMPLE_ROWS unset)",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    from monitoring.drift import Thresholds, data_drift

    def mlstack_check(reference, current, columns):
        thresholds = Thresholds(sample_rows=None if args.no_sample else Thresholds().sample_rows)
        verdicts, *_ = data_drift(reference, current, thresholds, columns=columns)
        return sum(v.drifted for v in verdicts)

    warm_ref, warm_cur, warm_cols = frames(2_000, seed=0)
    mlstack_check(warm_ref, warm_cur, warm_cols)  # imports and first-call set-up are not the check

    rows, result = [], {"bench": "drift", "columns": N_COLUMNS}
    for size in args.sizes:
        reference, current, columns = frames(size, seed=size)
        console.print(f"{size:,} rows x {N_COLUMNS} columns ...")
        ours_s, ours = timed(mlstack_check, reference, current, columns)
        base_s, base = timed(baseline, reference, current, columns)
        label = f"{size // 1000}k" if size < 1_000_000 else f"{size // 1_000_000}m"
        result[f"rows_{label}_s"] = round(ours_s, 3)
        result[f"baseline_{label}_s"] = round(base_s, 3)
        rows.append(
            (f"{size:,}", f"{ours_s:.2f}", f"{base_s:.2f}", f"{ours_s / base_s:.1f}", f"{ours}", f"{base}")
        )
    if "rows_100k_s" in result and "rows_1m_s" in result:
        result["scaling_1m_over_100k"] = round(result["rows_1m_s"] / result["rows_100k_s"], 2)
    report(
        "Drift check: mlstack (Evidently) vs scipy KS + PSI",
        rows,
        ("rows", "mlstack s", "baseline s", "ratio", "mlstack drifted", "baseline drifted"),
        result,
    )


if __name__ == "__main__":
    main()
