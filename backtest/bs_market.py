"""Small Black-Scholes option markets for tests and benchmarks of the backtest.

A geometric Brownian path on the exchange calendar, listed weekly and monthly expirations, a
strike grid around the spot, quotes priced by Black-Scholes with a linear put skew and a spread
that widens with price, optional randomly missing quotes. Every float is rounded through
float32 so that the chain index (float32 columns) and a float64 reader see identical values.
This is not the synthetic market of DESIGN §3.3 (``backtest.synth``); it is a deterministic
fixture generator whose only job is to exercise the engine's rules.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa

from backtest.calendar import listed_expirations, trading_days
from backtest.index import ChainIndex
from backtest.pricing import bs_greeks
from backtest.store import chain_arrays

_EPOCH = dt.date(1970, 1, 1)


def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def make_chains(
    seed: int = 0,
    start: dt.date = dt.date(2021, 1, 4),
    n_days: int = 60,
    spot: float = 100.0,
    vol: float = 0.2,
    skew: float = -0.3,
    strike_step: float = 1.0,
    strikes_each_side: int = 15,
    weekly_horizon_days: int = 63,
    horizon_days: int = 120,
    missing: float = 0.0,
    style: str = "E",
    rate: float = 0.0,
) -> tuple[pd.DataFrame, pd.Series]:
    """Chain rows (store column names) and the underlying close by date."""
    rng = np.random.default_rng(seed)
    days = trading_days(start, start + dt.timedelta(days=int(n_days * 1.6) + 10))[:n_days]
    shocks = rng.standard_normal(len(days)) * vol / np.sqrt(252) - 0.5 * vol**2 / 252
    path = _f32(np.round(spot * np.exp(np.cumsum(shocks)), 2))
    parts = []  # (quote day, dte, strike, is_call, spot) per row, priced in one call below
    for day, s in zip(days, path):
        exps = listed_expirations(day, weekly_horizon_days, horizon_days)
        center = round(s / strike_step) * strike_step
        strikes = center + strike_step * np.arange(-strikes_each_side, strikes_each_side + 1)
        e, k, c = np.meshgrid(np.array([(x - day).days for x in exps]), strikes[strikes > 0], [True, False],
                              indexing="ij")
        parts.append((np.full(e.size, (day - _EPOCH).days), e.ravel(), k.ravel(), c.ravel(), np.full(e.size, s)))
    q, e, k, c, s = (np.concatenate(x) for x in zip(*parts))
    sigma = np.maximum(vol + skew * np.log(k / s), 0.05)
    g = bs_greeks(c, s, k, np.maximum(e, 0) / 365.0, rate, 0.0, sigma)
    intrinsic = np.maximum(np.where(c, s - k, k - s), 0.0)
    price = np.where(e > 0, g.price, intrinsic)
    delta = np.where(e > 0, g.delta, np.where(intrinsic > 0, np.where(c, 1.0, -1.0), 0.0))
    half = 0.01 + 0.02 * price
    bid = np.maximum(np.round(price - half, 2), 0.0)
    ask = np.maximum(np.round(price + half, 2), bid + 0.01)
    epoch = np.datetime64("1970-01-01", "D")
    chains = pd.DataFrame({
        "quote_date": epoch + q.astype("timedelta64[D]"),
        "expiration": epoch + (q + e).astype("timedelta64[D]"),
        "strike": k, "right": np.where(c, "C", "P"), "bid": _f32(bid), "ask": _f32(ask),
        "delta": _f32(np.round(delta, 4)), "iv": sigma, "underlying_price": s,
    })
    if missing > 0:
        chains = chains[rng.random(len(chains)) >= missing]
    chains = chains.assign(underlying="TEST", root="TEST", style=style)
    chains = chains.sort_values(["quote_date", "expiration", "right", "strike"], ignore_index=True)
    closes = pd.Series(path, index=pd.to_datetime(days))
    return chains, closes


def to_index(chains: pd.DataFrame, closes: pd.Series | None = None) -> ChainIndex:
    """A ChainIndex over a chain DataFrame with store column names."""
    from backtest.schema import CHAIN_SCHEMA, conform

    table = conform(pa.Table.from_pandas(chains, preserve_index=False), CHAIN_SCHEMA)
    return ChainIndex.from_arrays(chain_arrays(table), closes, underlying=str(chains["underlying"].iloc[0]))


def write_dataset(out, chains: pd.DataFrame, closes: pd.Series, underlying: str = "TEST"):
    """Write a chain DataFrame and its underlying closes as a canonical dataset at ``out``."""
    from backtest.store import DatasetWriter

    with DatasetWriter(out) as writer:
        writer.write_chains(underlying, pa.Table.from_pandas(chains, preserve_index=False), "part-0")
        bars = pd.DataFrame({"date": closes.index.date, "close": closes.to_numpy()})
        writer.write_underlying(underlying, pa.Table.from_pandas(bars, preserve_index=False))
    return out
