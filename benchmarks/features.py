"""Options-feature throughput: chain rows per second per core of the numba kernel
(``models.features.options.daily_raw``, single-threaded), against the straightforward pandas
groupby implementation of the same aggregates (``models.features.reference``) timed in the same
run on a subset of the days. Target (issue 9): >= 1,000,000 rows/s per core.

    osd bench --suite features [--quick]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the chain generator the feature tests use (tests.feature_market)

from backtest.schema import CHAIN_SCHEMA, conform  # noqa: E402
from backtest.store import chain_arrays  # noqa: E402
from models.features.options import daily_raw  # noqa: E402
from models.features.reference import daily_raw_pandas  # noqa: E402
from tests.feature_market import chain_table, price_path  # noqa: E402

EXPIRIES = (2, 7, 14, 21, 28, 35, 49, 63, 91, 182, 273, 365)
STRIKES = 161  # $1 apart; 12 expirations x 2 rights x 161 strikes = 3,864 rows a day (an SPY-sized chain)


def _chain(n_days: int):
    vols = 0.15 + 0.1 * np.sin(np.linspace(0, 6, n_days)) ** 2
    dates = pd.bdate_range("2020-01-02", periods=n_days).date
    table = chain_table(dates, price_path(n_days, vols, seed=1), vols, n_strikes=STRIKES, expiry_days=EXPIRIES,
                        strike_step=1.0)
    return chain_arrays(conform(table, CHAIN_SCHEMA))


def _best_of(fn, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(quick: bool = False) -> dict:
    n_days, baseline_days = (60, 5) if quick else (260, 10)
    chain = _chain(n_days)
    daily_raw(_chain(2))  # compile / load the cached kernel outside the timing
    kernel_s = _best_of(lambda: daily_raw(chain), 3)
    rows_per_day = len(chain) // n_days
    subset = _chain(baseline_days)
    baseline_s = _best_of(lambda: daily_raw_pandas(subset), 1)
    kernel_rps = len(chain) / kernel_s
    baseline_rps = len(subset) / baseline_s
    return {
        "chain_rows": len(chain),
        "rows_per_day": rows_per_day,
        "kernel_s": round(kernel_s, 4),
        "kernel_rows_per_s_per_core": round(kernel_rps),
        "baseline_rows": len(subset),
        "baseline_rows_per_s": round(baseline_rps),
        "speedup_vs_pandas": round(kernel_rps / baseline_rps, 1),
        "target_rows_per_s": 1_000_000,
        "meets_target": bool(kernel_rps >= 1_000_000),
    }
