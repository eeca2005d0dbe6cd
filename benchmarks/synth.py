"""Synthetic market benchmark: chain rows per second per core generated and written, against
baselines measured in the same run, and peak memory of a 10-year, 3-underlying market.

* throughput: `synthesize` of SPY over N years (1 quick, 5 full); rows / wall second and rows /
  CPU second of this process (= per core: generation is single-threaded). Ratios use CPU
  seconds for both sides, since on a shared machine wall time mostly measures the neighbours.
* baseline 1: plain `pyarrow.parquet.write_table` (default settings) of the same rows, read
  back from the dataset: the cost of only writing them.
* baseline 2: a naive per-row generator (a Python loop pricing and quoting each row with the
  scalar BSM function) on a slice of the same rows.
* memory: a subprocess generates 10 years x SPY,QQQ,IWM (2 years quick) and reports its peak
  resident set size (ru_maxrss).
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from backtest.pricing_nb import bs_greeks
from backtest.store import Dataset
from backtest.synth import synthesize

REPO = Path(__file__).resolve().parents[1]
_MEMORY_SCRIPT = """
import resource, sys, time
from backtest.synth import synthesize
t0 = time.perf_counter()
synthesize(sys.argv[1], "SPY,QQQ,IWM", sys.argv[2], sys.argv[3], seed=1)
import json
from backtest.store import Dataset
rows = sum(u["rows"] for u in Dataset(sys.argv[1]).meta["underlyings"].values())
print(json.dumps({"rows": rows, "wall_s": time.perf_counter() - t0,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _naive_rows_per_s(table, n: int = 20_000) -> float:
    """Per-row Python generation of the same quotes (price, greeks, rounding) on n rows."""
    strikes = table["strike"].to_numpy()[:n]
    spot = table["underlying_price"].to_numpy()[:n]
    iv = np.nan_to_num(table["iv"].to_numpy(zero_copy_only=False)[:n], nan=0.2)
    calls = (table["right"].to_numpy(zero_copy_only=False)[:n] == "C")
    t0 = time.process_time()
    rows = []
    for i in range(n):
        price, delta, gamma, theta, vega = bs_greeks.py_func(bool(calls[i]), spot[i], strikes[i], 0.1, 0.03, 0.015, iv[i])
        half = max(0.005, 0.01 + 0.0075 * price)
        rows.append((math.floor((price - half) * 100) / 100, math.ceil((price + half) * 100) / 100, delta, gamma, theta, vega))
    return n / (time.process_time() - t0)


def run(quick: bool) -> dict:
    years = 1 if quick else 5
    end = f"{2018 + years}-12-31"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        synthesize(tmp / "warm", "SPY", "2019-01-01", "2019-01-31", seed=1)  # compile kernels
        wall0, cpu0 = time.perf_counter(), time.process_time()
        path = synthesize(tmp / "bench", "SPY", "2019-01-01", end, seed=1)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        rows = Dataset(path).meta["underlyings"]["SPY"]["rows"]
        files = sorted((path / "chains").rglob("*.parquet"))
        tables = [pq.read_table(f) for f in files]
        w0 = time.process_time()
        for i, t in enumerate(tables):
            pq.write_table(t, tmp / f"plain{i}.parquet")
        plain_rows_per_s = rows / (time.process_time() - w0)
        naive_rows_per_s = _naive_rows_per_s(tables[0])
        mem_years = 2 if quick else 10
        proc = subprocess.run(
            [sys.executable, "-c", _MEMORY_SCRIPT, str(tmp / "mem"), "2014-01-01", f"{2013 + mem_years}-12-31"],
            capture_output=True, text=True, cwd=REPO, check=True)
        memory = json.loads(proc.stdout.strip().splitlines()[-1])
    per_s = rows / cpu
    return {
        "years": years,
        "rows": rows,
        "rows_per_day": round(rows / (252 * years)),
        "wall_s": round(wall, 2),
        "rows_per_s_wall": round(rows / wall),
        "rows_per_s_per_core_cpu": round(per_s),
        "plain_pyarrow_write_rows_per_s_cpu": round(plain_rows_per_s),
        "ratio_vs_plain_write": round(per_s / plain_rows_per_s, 2),
        "naive_per_row_rows_per_s_cpu": round(naive_rows_per_s),
        "ratio_vs_naive_per_row": round(per_s / naive_rows_per_s, 1),
        "memory_market": f"{mem_years} years x SPY,QQQ,IWM",
        "memory_rows": memory["rows"],
        "memory_wall_s": round(memory["wall_s"], 1),
        "peak_rss_mb": round(memory["peak_rss_mb"]),
    }
