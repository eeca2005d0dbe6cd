"""The numba kernels against the pandas reference, trade by trade, on random small markets and
random genomes (property-based)."""
from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.bs_market import make_chains, to_index
from backtest.costs import Costs
from backtest.dna import StructureDNA, StructureType, repair
from backtest.engine import run
from tests.reference_backtest import reference_backtest


@lru_cache(maxsize=16)
def market(seed: int, missing: float, style: str, noisy: bool):
    chains, closes = make_chains(seed=seed, n_days=30, start=dt.date(2021, 3, 1), strikes_each_side=8,
                                 strike_step=2.0, vol=0.35, missing=missing, style=style, horizon_days=100)
    if noisy:  # vendor-like deltas: not monotone in strike, some missing
        rng = np.random.default_rng(seed)
        noise = rng.choice([0.0, 0.0, 0.03, -0.03, np.nan], len(chains))
        chains = chains.assign(delta=(chains["delta"] + noise).astype(np.float32).astype(float))
    return chains, closes, to_index(chains, closes)


def assert_same(result, trades: pd.DataFrame, equity: pd.DataFrame) -> None:
    got = result.trades
    assert len(got) == len(trades), (got, trades)
    for i, (_, a) in enumerate(got.iterrows()):
        b = trades.iloc[i]
        assert pd.Timestamp(a.entry_date) == b.entry_date
        assert pd.Timestamp(a.exit_date) == b.exit_date
        assert a.exit_reason == b.exit_reason
        assert a.contracts == b.contracts
        assert a.quote_gaps == b.quote_gaps
        assert np.isclose(a.pnl, b.pnl, rtol=1e-9, atol=1e-6)
        assert np.isclose(a.entry_premium, b.entry_premium, rtol=1e-12, atol=1e-9)
        for j, leg in enumerate(b.legs, start=1):
            assert a[f"leg{j}_right"] == leg["right"]
            assert a[f"leg{j}_qty"] == leg["qty"]
            assert a[f"leg{j}_strike"] == leg["strike"]
            assert pd.Timestamp(a[f"leg{j}_expiration"]) == leg["expiration"]
            assert np.isclose(a[f"leg{j}_entry_fill"], leg["fill"], rtol=1e-12, atol=1e-9)
            assert np.isclose(a[f"leg{j}_exit_fill"], leg["exit_fill"], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(result.equity["equity"].to_numpy(), equity["equity"].to_numpy(), rtol=1e-10)


def optional(strategy):
    return st.one_of(st.none(), strategy)


genomes = st.builds(
    lambda t, f0, f1, b0, b1, ld, sd, w, pt, sl, de, br, mh, risk, npos: repair(StructureDNA(
        t, front_dte_min=f0, front_dte_max=f1, back_dte_min=b0, back_dte_max=b1,
        long_strike_delta=ld, short_strike_delta=sd, spread_width_strikes=w, profit_target_pct=pt,
        stop_loss_pct=sl, dte_exit=de, delta_breach=br, max_hold_days=mh, max_position_pct=risk,
        max_positions=npos)),
    st.sampled_from(list(StructureType)),
    st.integers(3, 30), st.integers(5, 45), st.integers(40, 70), st.integers(50, 100),
    st.floats(0.05, 0.95), st.floats(0.05, 0.95), st.integers(1, 3),
    optional(st.floats(0.05, 1.5)), optional(st.floats(0.1, 2.0)), optional(st.integers(0, 10)),
    optional(st.floats(0.3, 0.9)), optional(st.integers(1, 15)), st.floats(0.01, 0.3), st.integers(1, 3),
)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(dna=genomes, seed=st.integers(0, 2), missing=st.sampled_from([0.0, 0.05]), noisy=st.booleans(),
       style=st.sampled_from(["E", "A"]), fill=st.sampled_from(["cross", "legs_slippage"]),
       mask_seed=st.integers(0, 1000))
def test_kernel_equals_reference(dna, seed, missing, noisy, style, fill, mask_seed):
    chains, closes, index = market(seed, missing, style, noisy)
    costs = Costs(fill=fill, assignment_fee=0.5 if style == "A" else 0.0)
    mask = np.random.default_rng(mask_seed).random(index.n_days) < 0.7
    result = run(dna, index, costs=costs, entry_mask=mask)
    trades, equity = reference_backtest(chains, closes, dna, costs, mask)
    assert_same(result, trades, equity)
