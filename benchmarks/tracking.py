"""What MLflow tracking costs a demo-sized discovery run.

The same pipeline runs with :class:`NullSink` (the baseline) and with :class:`MlflowSink`
(MLflow's local default store in a fresh directory; in the full run also a real ``mlflow
server`` on 127.0.0.1): a start with the resolved config, N generations of CPU-bound work with
one ``log_generation`` each, then ``finish`` with a few-thousand-row evaluations table and 5
structures (lockbox equity curve, trade log, plots). The generation work is the real
Black-Scholes kernel over a large option grid, sized so that a generation lasts about as long as
a demo generation (the demo runs 60-120 s). The figure is the wall-time overhead against the
baseline measured in the same run; the time spent inside sink calls on the search's thread is
reported as well.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.pricing import bs_greeks
from discovery.tracking import MlflowSink, NullSink, PayoffLeg, StructureRecord

STRUCTURE_TYPES = ("short_put", "iron_condor", "put_credit_spread", "short_strangle", "call_diagonal")


def _grid(n: int, rng: np.random.Generator) -> tuple:
    return (rng.random(n) < 0.5, np.full(n, 400.0), rng.uniform(300, 500, n), rng.uniform(0.02, 1.0, n),
            0.03, 0.0, rng.uniform(0.1, 0.6, n))


def _generation_work(grid: tuple, repeats: int) -> float:
    return float(sum(bs_greeks(*grid).price.sum() for _ in range(repeats)))


def _config() -> dict:
    return {"name": "bench", "seed": 1, "data": {"path": "demo-data", "underlyings": ["SYN"]},
            "search": {"algorithm": "mu_plus_lambda", "generations": 30, "mu": 60, "lambda": 120},
            "fitness": {"folds": 5, "embargo_days": 60, "metric": "sharpe_lcb"},
            "space": {f"gene_{i}": {"low": 0, "high": i + 1} for i in range(25)}}


def _evaluations(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    frame = {"genome": [f"g{i:05d}" for i in range(rows)],
             "structure_type": rng.choice(STRUCTURE_TYPES, rows)}
    frame.update({f"gene_{i}": rng.random(rows) for i in range(20)})
    frame.update({f"fold{f}_{m}": rng.normal(size=rows) for f in range(5) for m in ("sharpe", "trades", "pnl", "mdd")})
    return pd.DataFrame(frame)


def _structure(rank: int, rng: np.random.Generator) -> StructureRecord:
    dates = pd.bdate_range("2024-01-02", periods=252).date
    equity = 100_000 + np.cumsum(rng.normal(30, 400, len(dates)))
    trades = 50
    return StructureRecord(
        rank=rank,
        dna={"structure_type": STRUCTURE_TYPES[rank - 1], "front_dte_min": 21, "front_dte_max": 45,
             "long_strike_delta": 0.1, "short_strike_delta": 0.2, "spread_width_strikes": 5,
             "entry_regime": [0, 1], "profit_target_pct": 0.5, "stop_loss_pct": 2.0, "dte_exit": 7},
        params={"fill": "cross", "commission": 0.65},
        in_sample={"sharpe": 1.2, "n_trades": 200}, out_of_sample={"sharpe": 0.9, "n_trades": 80},
        lockbox={"sharpe": 0.7, "max_drawdown": -0.08, "n_trades": trades},
        honesty={"dsr": 0.97, "pbo": 0.1}, verdict="discovered",
        equity_curve=pd.DataFrame({"date": dates, "equity": equity, "daily_pnl": np.r_[0.0, np.diff(equity)]}),
        trade_log=pd.DataFrame({"entry_date": dates[:trades], "exit_date": dates[5:trades + 5],
                                "pnl": rng.normal(50, 300, trades), "reason": "profit_target"}),
        legs=[PayoffLeg("P", 380, 1, 0.9), PayoffLeg("P", 385, -1, 1.6)], spot=400.0,
    )


def _pipeline(sink, generations: int, grid: tuple, repeats: int, rows: int) -> dict:
    """One demo-shaped run: its wall time, the process's CPU time (both threads; on a shared
    machine less noisy than wall time) and the time spent inside sink calls."""
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    in_sink = 0.0
    s = time.perf_counter()
    sink.start(_config())
    in_sink += time.perf_counter() - s
    for gen in range(generations):
        g0 = time.perf_counter()
        _generation_work(grid, repeats)
        metrics = {"best_fitness": 0.01 * gen, "mean_fitness": 0.005 * gen, "evaluations": 120.0,
                   "evals_per_s": 120.0 / (time.perf_counter() - g0), "diversity": 0.5}
        s = time.perf_counter()
        sink.log_generation(gen, metrics)
        in_sink += time.perf_counter() - s
    evaluations = _evaluations(rows, rng)
    structures = [_structure(rank, rng) for rank in range(1, 6)]
    s = time.perf_counter()
    sink.finish({"discovered_structures": [r.dna for r in structures]}, evaluations, structures)
    in_sink += time.perf_counter() - s
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0, "in_sink_s": in_sink}


def _overhead(name: str, measured: dict, baseline: dict) -> dict:
    return {
        f"{name}_wall_s": round(measured["wall_s"], 2),
        f"{name}_wall_overhead_share": round(measured["wall_s"] / baseline["wall_s"] - 1, 4),
        f"{name}_cpu_overhead_share": round(measured["cpu_s"] / baseline["cpu_s"] - 1, 4),
        f"{name}_in_sink_calls_s": round(measured["in_sink_s"], 2),
        # the part of the cost that surely lands on the search's critical path
        f"{name}_in_sink_calls_share": round(measured["in_sink_s"] / baseline["wall_s"], 4),
    }


def run(quick: bool) -> dict:
    generations, seconds_per_generation, rows = (10, 0.5, 1000) if quick else (30, 2.0, 3000)
    grid = _grid(200_000, np.random.default_rng(1))
    _generation_work(grid, 1)  # compile/warm the kernel outside the timings
    t = time.perf_counter()
    _generation_work(grid, 3)
    repeats = max(1, round(seconds_per_generation / ((time.perf_counter() - t) / 3)))
    figures: dict = {"generations": generations, "genomes": rows, "structures": 5}
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # MLflow's local default store lands in a fresh working directory
        try:
            nulls = [_pipeline(NullSink(), generations, grid, repeats, rows)]
            local = _pipeline(MlflowSink("bench", spool_dir=Path(tmp) / "spool"), generations, grid, repeats, rows)
            nulls.append(_pipeline(NullSink(), generations, grid, repeats, rows))
            baseline = {key: float(np.mean([n[key] for n in nulls])) for key in ("wall_s", "cpu_s")}
            figures.update({"baseline_wall_s": round(baseline["wall_s"], 2),
                            "baseline_cpu_s": round(baseline["cpu_s"], 2)})
            figures.update(_overhead("local_store", local, baseline))
            if not quick:
                from tests.mlflow_server import MlflowServer

                server = MlflowServer(Path(tmp) / "server")
                server.start()
                try:
                    remote = _pipeline(MlflowSink("bench", tracking_uri=server.url, spool_dir=Path(tmp) / "spool"),
                                       generations, grid, repeats, rows)
                finally:
                    server.stop()
                figures.update(_overhead("server", remote, baseline))
        finally:
            os.chdir(cwd)
    return figures
