"""Test helper: P&L of simple option trades held to expiration at mid, and a t-statistic of
their mean that accounts for overlapping holding periods (Newey-West)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from backtest.store import Dataset

RATE = 0.03  # the synthetic SPY profile's rate (backtest.synth.model.SymbolProfile)


def newey_west_t(x: np.ndarray, lags: int) -> float:
    """t-statistic of mean(x) with Bartlett-weighted autocovariances up to `lags`."""
    x = np.asarray(x, float)
    n = len(x)
    e = x - x.mean()
    var = e @ e / n
    for j in range(1, lags + 1):
        var += 2.0 * (1.0 - j / (lags + 1)) * (e[j:] @ e[:-j]) / n
    return float(x.mean() / np.sqrt(var / n))


def _chain_frame(path, dte_min: int, dte_max: int) -> tuple[pd.DataFrame, pd.Series]:
    ds = Dataset(path)
    t = ds.read_chains("SPY", columns=["quote_date", "expiration", "strike", "right", "bid", "ask",
                                         "delta", "underlying_price"])
    dte = pc.days_between(t["quote_date"], t["expiration"])
    t = t.append_column("dte", dte).filter(pc.and_(pc.greater_equal(dte, dte_min), pc.less_equal(dte, dte_max)))
    df = t.to_pandas()
    df["mid"] = 0.5 * (df["bid"] + df["ask"])
    bars = ds.read_underlying("SPY").to_pandas()
    close = pd.Series(bars["close"].to_numpy(), index=pd.to_datetime(bars["date"]))
    df["quote_date"] = pd.to_datetime(df["quote_date"])
    df["expiration"] = pd.to_datetime(df["expiration"])
    regimes = ds.read_regimes("SPY").to_pandas()
    df = df.merge(regimes.assign(date=pd.to_datetime(regimes["date"])).rename(columns={"date": "quote_date"}),
                  on="quote_date", how="left")
    return df, close


def _nearest_expiry(df: pd.DataFrame, target_dte: int) -> pd.DataFrame:
    dist = (df["dte"] - target_dte).abs()
    best = dist.groupby(df["quote_date"]).transform("min")
    chosen = df[dist == best]
    first = chosen.groupby("quote_date")["expiration"].transform("min")
    return chosen[chosen["expiration"] == first]


def _settle(trades: pd.DataFrame, close: pd.Series) -> pd.DataFrame:
    trades = trades[trades["expiration"] <= close.index[-1]].copy()
    trades["settle"] = close.reindex(trades["expiration"]).to_numpy()
    trades["discount"] = np.exp(-RATE * trades["dte"] / 365.0)
    return trades.sort_values("quote_date")


def straddle_pnl(path, target_dte: int = 30) -> pd.DataFrame:
    """Long ATM straddle (strike nearest spot) on the expiration nearest target_dte, every day."""
    df, close = _chain_frame(path, target_dte - 10, target_dte + 10)
    df = _nearest_expiry(df, target_dte)
    pairs = df.pivot_table(index=["quote_date", "expiration", "strike", "dte", "underlying_price", "regime"],
                           columns="right", values="mid").dropna().reset_index()
    pairs = pairs.loc[(pairs["strike"] - pairs["underlying_price"]).abs().groupby(pairs["quote_date"]).idxmin()]
    trades = _settle(pairs, close)
    payoff = (trades["settle"] - trades["strike"]).abs()
    trades["pnl"] = trades["discount"] * payoff - (trades["C"] + trades["P"])
    return trades


def short_option_pnl(path, right: str, abs_delta: float, target_dte: int = 30) -> pd.DataFrame:
    """Short the `right` option with |delta| nearest abs_delta on the expiration nearest
    target_dte, every day; P&L = premium at mid - discounted payoff."""
    df, close = _chain_frame(path, target_dte - 10, target_dte + 10)
    df = _nearest_expiry(df[df["right"] == right], target_dte)
    df = df.loc[(df["delta"].abs() - abs_delta).abs().groupby(df["quote_date"]).idxmin()]
    trades = _settle(df, close)
    sign = 1.0 if right == "C" else -1.0
    payoff = np.maximum(sign * (trades["settle"] - trades["strike"]), 0.0)
    trades["pnl"] = trades["mid"] - trades["discount"] * payoff
    return trades
