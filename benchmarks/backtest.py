"""Backtest kernel throughput: an iron condor with every exit over five years of synthetic SPY
(``backtest.synth``, realistic mode).

Figures: structure-days per second on one core (genomes x trading days / seconds of one
``run_many`` call, best of 5, numba limited to one thread; by wall clock and by the process's
CPU time, since the machines are shared, with the load average), where the time goes (CPU
nanoseconds per genome-day for workloads that isolate the day loop and the entry attempts),
the first-call compile time measured in a fresh process with an empty numba cache, and the
ratio to the pandas reference (tests/reference_backtest.py) timed in the same run on the first
days of the same market (scaled per structure-day).
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from backtest.dna import StructureDNA, StructureType  # noqa: E402
from backtest.engine import run_many  # noqa: E402
from backtest.index import ChainIndex  # noqa: E402
from backtest.store import Dataset  # noqa: E402
from backtest.synth.generator import synthesize  # noqa: E402

CONDOR = StructureDNA(
    StructureType.IRON_CONDOR, front_dte_min=30, front_dte_max=50, short_strike_delta=0.16,
    spread_width_strikes=2, profit_target_pct=0.5, stop_loss_pct=2.0, dte_exit=10,
    delta_breach=0.35, max_hold_days=30, max_positions=5, max_position_pct=0.02, max_total_risk_pct=0.2,
)

COMPILE_SNIPPET = """
import time, datetime as dt
t0 = time.perf_counter()
from backtest.bs_market import make_chains, to_index
from backtest.dna import StructureDNA, StructureType
from backtest.engine import run_many
index = to_index(*make_chains(n_days=5, strikes_each_side=4))
t1 = time.perf_counter()
run_many([StructureDNA(StructureType.IRON_CONDOR)], index)
print(time.perf_counter() - t1)
"""


def compile_seconds() -> float:
    """First call of the kernel in a fresh interpreter with an empty numba cache."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
        out = subprocess.run([sys.executable, "-c", COMPILE_SNIPPET], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def genomes(n: int) -> list[StructureDNA]:
    """n condors spread over deltas and targets (distinct work, same structure)."""
    rng = np.random.default_rng(0)
    return [dataclasses.replace(CONDOR, short_strike_delta=round(float(rng.uniform(0.1, 0.3)), 3),
                                profit_target_pct=round(float(rng.uniform(0.3, 0.8)), 2)) for _ in range(n)]


def time_run_many(dnas, index, repeats: int = 5, entry_masks=None):
    """Best wall and CPU seconds of run_many over a few repeats, and the last result."""
    wall = cpu = np.inf
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        many = run_many(dnas, index, entry_masks=entry_masks)
        wall, cpu = min(wall, time.perf_counter() - t), min(cpu, time.process_time() - c)
    return wall, cpu, many


def entry_attempts(many, cap: int) -> int:
    """Genome-days on which the kernel tried an entry: fewer than ``cap`` positions open after
    the day's exits (the entry mask is always on here)."""
    entered = np.zeros_like(many.open_positions)
    np.add.at(entered, (many.trade_genome, many.trade_entry_day), 1)
    return int((many.open_positions - entered < cap).sum())


def run(quick: bool) -> dict:
    import numba

    from tests.reference_backtest import reference_backtest

    years, n_genomes, ref_days = (1, 16, 10) if quick else (5, 64, 25)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = synthesize(Path(tmp) / "spy", "SPY", "2019-01-01", f"{2018 + years}-12-31", seed=11)
        index = ChainIndex.from_dataset(path, "SPY").set_read_only()
        build_s = time.perf_counter() - t0
        dataset = Dataset(path)
        bars = dataset.read_underlying("SPY").to_pandas()
        closes = pd.Series(bars["close"].to_numpy(), index=pd.to_datetime(bars["date"]))
        first_days = index.dates[:ref_days]
        chains = dataset.read_chains("SPY", str(first_days[0]), str(first_days[-1])).to_pandas()
    figures = {
        "market_days": index.n_days, "chain_rows": index.n_rows,
        "rows_per_day": round(index.n_rows / index.n_days), "index_bytes_per_row": round(index.nbytes / index.n_rows, 2),
        "market_build_s": round(build_s, 2),
    }
    figures["compile_s"] = round(compile_seconds(), 2)

    dnas = genomes(n_genomes)
    work = n_genomes * index.n_days
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        run_many(dnas[:1], index)  # load the cached kernel
        wall, cpu, many = time_run_many(dnas, index)
        single = [dataclasses.replace(d, max_positions=1) for d in dnas]
        wall_1, cpu_1, many_1 = time_run_many(single, index)
        # where the time goes: a genome-day that never enters, and one whose daily entry attempt
        # builds the condor but can never size it (no position ever opens)
        idle_cpu = time_run_many(dnas, index, entry_masks=np.zeros(index.n_days, dtype=bool))[1]
        unsized = [dataclasses.replace(d, max_position_pct=1e-4, max_total_risk_pct=1e-4) for d in dnas]
        attempt_cpu = time_run_many(unsized, index)[1]
    finally:
        numba.set_num_threads(threads)
    kernel_rate = work / wall
    # the machine is shared: CPU time of this (single-threaded) process is what one core spent
    figures |= {"genomes": n_genomes, "max_positions": CONDOR.max_positions,
                "mean_open_positions": round(float(many.open_positions.mean()), 2),
                "trades": int(many.n_trades.sum()), "kernel_wall_s": round(wall, 4),
                "kernel_cpu_s": round(cpu, 4), "structure_days_per_s_per_core": round(kernel_rate),
                "structure_days_per_cpu_s": round(work / cpu),
                "position_days_per_cpu_s": round(float(many.open_positions.sum()) / cpu),
                "one_position_trades": int(many_1.n_trades.sum()),
                "one_position_structure_days_per_s_per_core": round(work / wall_1),
                "one_position_structure_days_per_cpu_s": round(work / cpu_1),
                "entry_attempts_per_genome_day": round(entry_attempts(many, CONDOR.max_positions) / work, 3),
                "cpu_ns_per_genome_day": round(cpu / work * 1e9, 1),
                "cpu_ns_per_genome_day_without_entries": round(idle_cpu / work * 1e9, 1),
                "cpu_ns_per_entry_attempt": round((attempt_cpu - idle_cpu) / work * 1e9, 1)}

    t, c = time.perf_counter(), time.process_time()
    reference_backtest(chains, closes, dnas[0])
    ref_s, ref_cpu = time.perf_counter() - t, time.process_time() - c
    ref_rate = ref_days / ref_s
    figures |= {"reference_days": ref_days, "reference_s": round(ref_s, 3),
                "reference_structure_days_per_s": round(ref_rate, 1),
                "speedup_vs_reference": round(kernel_rate / ref_rate),
                "speedup_vs_reference_cpu": round(work / cpu / (ref_days / ref_cpu)),
                "target_structure_days_per_s_per_core": 10_000_000, "target_speedup": 1000,
                # the machine is shared: the 1-minute load average before and after the suite
                "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                "cores": os.cpu_count()}
    return figures
