"""Small deterministic datasets for the feature tests: a GBM underlying (with a volatility path
the test chooses), Black-Scholes chains with a put skew, bars and a VIX-like index."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from backtest.calendar import trading_days
from backtest.pricing import bs_greeks
from backtest.store import DatasetWriter

RATE = 0.02


def price_path(n_days: int, vols: np.ndarray, seed: int, drift: np.ndarray | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    drift = np.zeros(n_days) if drift is None else drift
    steps = drift / 252 - 0.5 * vols ** 2 / 252 + vols / np.sqrt(252) * rng.standard_normal(n_days)
    steps[0] = 0.0
    return 400.0 * np.exp(np.cumsum(steps))


def chain_table(dates, spots, vols, n_strikes: int = 15, expiry_days=(7, 21, 35, 63, 120), seed: int = 0,
                strike_step: float = 5.0) -> pa.Table:
    """One row per (day, expiration, right, strike), in the store's sort order."""
    rng = np.random.default_rng(seed)
    n_d, n_e = len(dates), len(expiry_days)
    shape = (n_d, n_e, 2, n_strikes)
    s = np.asarray(spots, dtype=float)[:, None, None, None]
    v = np.asarray(vols, dtype=float)[:, None, None, None]
    strikes = np.round(s / strike_step) * strike_step + strike_step * (np.arange(n_strikes) - n_strikes // 2)
    dte = np.asarray(expiry_days, dtype=float)[None, :, None, None]
    t = dte / 365
    is_call = np.array([True, False])[None, None, :, None]
    m = np.log(strikes / s)
    iv = v * (1.1 + 0.8 * m ** 2 - 0.6 * m) + 0.01 * np.sqrt(t)
    g = bs_greeks(is_call, s, strikes, t, RATE, 0.0, iv)
    mid = np.maximum(g.price, 0.05)
    day = np.asarray(dates, dtype="datetime64[D]")[:, None, None, None]
    full = lambda x: np.broadcast_to(x, shape).ravel()
    return pa.table({
        "quote_date": full(day), "underlying": np.full(mid.size, "SPY"), "root": np.full(mid.size, "SPY"),
        "expiration": full(day + dte.astype("timedelta64[D]")), "strike": full(strikes),
        "right": np.where(full(is_call), "C", "P"), "style": np.full(mid.size, "A"),
        "bid": full(mid * 0.98), "ask": full(mid * 1.02),
        "volume": rng.integers(0, 800, mid.size), "open_interest": rng.integers(0, 5000, mid.size),
        "iv": full(iv), "delta": full(g.delta), "gamma": full(g.gamma), "theta": full(g.theta),
        "vega": full(g.vega), "underlying_price": full(s)})


def write_market(out, n_days: int = 320, seed: int = 1, vols=None, with_vix: bool = True, with_bars: bool = True,
                 greeks: bool = True, start: str = "2021-01-04", **chain_kw):
    """Write a dataset; returns (dates, spots, vols)."""
    dates = trading_days(pd.Timestamp(start).date(), pd.Timestamp(start).date() + pd.Timedelta(days=int(n_days * 1.6)))[:n_days]
    dates = [pd.Timestamp(d).date() for d in dates]
    vols = np.full(n_days, 0.18) if vols is None else np.asarray(vols)
    spots = price_path(n_days, vols, seed)
    table = chain_table(dates, spots, vols, seed=seed, **chain_kw)
    if not greeks:
        for col in ("delta", "gamma", "theta", "vega"):
            table = table.set_column(table.schema.get_field_index(col), col, pa.nulls(table.num_rows, pa.float64()))
    rng = np.random.default_rng(seed + 1)
    with DatasetWriter(out) as w:
        w.write_chains("SPY", table, "part0")
        if with_bars:
            wiggle = np.abs(rng.normal(0, 0.004, n_days))
            w.write_underlying("SPY", pa.table({
                "date": dates, "open": spots, "high": spots * (1 + wiggle), "low": spots * (1 - wiggle),
                "close": spots, "volume": np.full(n_days, 1_000_000)}))
        if with_vix:
            vix = 100 * vols * 1.15 + rng.normal(0, 0.3, n_days)
            w.write_index("VIX", pa.table({"date": dates, "open": vix, "high": vix, "low": vix, "close": vix}))
    return dates, spots, vols
