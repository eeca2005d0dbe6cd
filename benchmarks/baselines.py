"""Wall time of the baselines (sleeves on one account under the risk layer) against a single
structure backtest over the same Black-Scholes market, measured in the same run.

Market: ``backtest.bs_market`` (weeklies and monthlies, 1.00 strike grid), 500 trading days
(quick: 150). The feature table is seeded noise over the columns the baselines read (IV rank,
RSI, SMA distances, regimes, edges), so every rule fires on some days; it exercises the rules'
cost, not their merit. Each figure is the best of ``repeats`` runs after one warm-up call (numba
compilation excluded).
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from backtest.bs_market import make_chains, to_index
from backtest.dna import StructureDNA
from backtest.engine import run_many
from backtest.risk import stress_report
from models.baselines import run_baseline, strike_step
from models.baselines.catalog import baselines
from models.regimes import MACHINE_LABELS, RULE_LABELS


def noise_features(index, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = index.n_days
    table = pd.DataFrame({
        "iv_rank": rng.uniform(0, 1, n), "rsi_14": rng.uniform(20, 80, n),
        "price_vs_sma20": rng.normal(0, 0.02, n), "price_vs_sma50": rng.normal(0, 0.03, n),
        "trend_regime": rng.integers(-1, 2, n).astype(float), "returns_1d": rng.normal(0, 0.012, n),
        "regime_rule": rng.integers(0, len(RULE_LABELS), n).astype(float),
        "regime_machine": rng.integers(0, len(MACHINE_LABELS), n).astype(float),
    }, index=pd.DatetimeIndex(index.dates.astype("datetime64[ns]")))
    for edge in ("vrp", "term_structure", "skew", "event_vol", "gamma_pressure"):
        table[f"edge_{edge}"] = rng.uniform(0, 1, n)
        table[f"edge_{edge}_side"] = rng.choice([-1.0, 1.0], n)
    return table


def _best(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def run(quick: bool) -> dict:
    n_days, repeats = (150, 2) if quick else (500, 3)
    chains, closes = make_chains(seed=3, n_days=n_days, strikes_each_side=25, weekly_horizon_days=70)
    index = to_index(chains, closes)
    table = noise_features(index)
    single = StructureDNA.from_dict({"structure_type": "iron_condor", "front_dte_min": 30, "front_dte_max": 45})
    base_s = _best(lambda: run_many([single], index), repeats)
    out: dict = {"days": n_days, "rows": int(len(chains)), "single_structure_s": base_s, "baselines": {}}
    for b in baselines(strike_step(index)):
        holder = {}
        t = _best(lambda: holder.__setitem__("r", run_baseline(b, index, table)), repeats)
        result = holder["r"]
        out["baselines"][b.name] = {
            "sleeves": len(b.sleeves), "seconds": t, "ratio_to_single": t / base_s, "reruns": result.reruns,
            "trades": int(sum(len(r.trade_pnl) for r in result.results)),
            "stress_s": _best(lambda: stress_report(result, index), repeats),
        }
    return out


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run("--quick" in sys.argv), indent=2))
