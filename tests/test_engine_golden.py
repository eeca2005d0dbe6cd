"""The optimised kernel against the outputs the unoptimised kernel (commit f428ad5) produced on
random genomes of every structure type: every trade field and the equity curve must be
bit-for-bit identical, so a speed-up can never shift a result.

``tests/data/engine_golden.npz`` holds those outputs; ``python -m tests.test_engine_golden``
rewrites it (only ever from a kernel that is known to be right)."""
from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np

from backtest.bs_market import make_chains, to_index
from backtest.costs import Costs
from backtest.dna import StructureDNA, StructureType, repair
from backtest.engine import INDEX_ARRAYS, run_many
from backtest.index import ChainIndex

GOLDEN = Path(__file__).parent / "data" / "engine_golden.npz"
# (seed, missing-quote share, exercise style, vendor-like noisy deltas, fill model)
MARKETS = ((0, 0.0, "E", False, "cross"), (1, 0.05, "A", True, "legs_slippage"),
           (2, 0.02, "E", True, "cross"))
N_GENOMES = 72  # four of each structure type per market


def random_genomes(rng: np.random.Generator) -> list[StructureDNA]:
    def maybe(value):
        return None if rng.random() < 0.25 else value

    types = list(StructureType)
    return [repair(StructureDNA(
        types[i % len(types)], front_dte_min=int(rng.integers(3, 30)), front_dte_max=int(rng.integers(5, 45)),
        back_dte_min=int(rng.integers(40, 70)), back_dte_max=int(rng.integers(50, 100)),
        long_strike_delta=float(rng.uniform(0.05, 0.95)), short_strike_delta=float(rng.uniform(0.05, 0.95)),
        spread_width_strikes=int(rng.integers(1, 4)), profit_target_pct=maybe(float(rng.uniform(0.05, 1.5))),
        stop_loss_pct=maybe(float(rng.uniform(0.1, 2.0))), dte_exit=maybe(int(rng.integers(0, 11))),
        delta_breach=maybe(float(rng.uniform(0.3, 0.9))), max_hold_days=maybe(int(rng.integers(1, 16))),
        max_position_pct=float(rng.uniform(0.01, 0.3)), max_positions=int(rng.integers(1, 6)),
    )) for i in range(N_GENOMES)]


NOISE = [0.0, 0.0, 0.03, -0.03, np.nan]


def golden_markets() -> list[tuple[ChainIndex, np.random.Generator, int]]:
    """The markets the golden outputs were made on, each with its generator (genomes and entry
    masks are drawn from it next). Used only to (re)write the file: the test reads the markets'
    index arrays back from it, so a platform whose numpy/scipy rounds the synthetic prices
    differently still runs the kernel on exactly the same inputs."""
    markets = []
    for seed, missing, style, noisy, _ in MARKETS:
        chains, closes = make_chains(seed=seed, n_days=90, start=dt.date(2021, 3, 1), strikes_each_side=8,
                                     strike_step=2.0, vol=0.35, missing=missing, style=style)
        rng = np.random.default_rng(seed)
        if noisy:  # vendor-like deltas: not monotone in strike, some missing
            noise = rng.choice(NOISE, len(chains))
            chains = chains.assign(delta=(chains["delta"] + noise).astype(np.float32).astype(float))
        markets.append((to_index(chains, closes), rng, len(chains)))
    return markets


def stored_markets(stored) -> list[tuple[ChainIndex, np.random.Generator, int]]:
    """The golden markets as stored in the file, each with its generator in the same state."""
    markets = []
    for m, (seed, _, _, noisy, _) in enumerate(MARKETS):
        index = ChainIndex(underlying="TEST", roots=tuple(stored[f"{m}/index.roots"].tolist()),
                           **{name: stored[f"{m}/index.{name}"] for name in INDEX_ARRAYS})
        n_rows = stored[f"{m}/index.n_chain_rows"].item()
        rng = np.random.default_rng(seed)
        if noisy:  # the draw the noise took, so genomes and masks come out the same
            rng.choice(NOISE, n_rows)
        markets.append((index, rng, n_rows))
    return markets


def golden_runs(markets) -> dict[str, np.ndarray]:
    """Every output array of run_many (legs included) per market, flattened into one dict."""
    out = {}
    for m, (index, rng, _) in enumerate(markets):
        fill = MARKETS[m][4]
        mask = rng.random((N_GENOMES, index.n_days)) < 0.8
        result = run_many(random_genomes(rng), index, costs=Costs(fill=fill, assignment_fee=0.5),
                          entry_masks=mask, legs=True)
        for f in dataclasses.fields(result):
            value = getattr(result, f.name)
            if isinstance(value, np.ndarray) and f.name != "dates":
                out[f"{m}/{f.name}"] = value
        for f in dataclasses.fields(result.legs):
            out[f"{m}/legs.{f.name}"] = getattr(result.legs, f.name)
    return out


def test_kernel_reproduces_golden_outputs():
    stored = np.load(GOLDEN)
    got = golden_runs(stored_markets(stored))
    outputs = [name for name in stored.files if "/index." not in name]
    assert sorted(got) == sorted(outputs)
    assert sum(len(got[f"{m}/trade_pnl"]) for m in range(len(MARKETS))) > 500  # the runs trade
    for name in outputs:
        np.testing.assert_array_equal(got[name], stored[name], err_msg=name)


if __name__ == "__main__":
    markets = golden_markets()
    inputs = {}
    for m, (index, _, n_rows) in enumerate(markets):
        inputs.update({f"{m}/index.{name}": getattr(index, name) for name in INDEX_ARRAYS})
        inputs[f"{m}/index.roots"] = np.array(index.roots)
        inputs[f"{m}/index.n_chain_rows"] = np.array(n_rows)
    np.savez_compressed(GOLDEN, **inputs, **golden_runs(markets))
