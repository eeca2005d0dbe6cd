"""Test helper: P&L of simple option trades held to expiration at mid, optionally delta-hedged
every day, and a t-statistic of their mean that accounts for overlapping holding periods.

Delta-hedging with the chain's delta on the underlying's martingale increments
(S[t+1] - S[t] * exp((r - q) dt)) adds a zero-mean term whatever the hedge ratio, so it leaves
the expected P&L unchanged while removing most of its path noise: the mean stays the quantity
under test (zero when fair) and the test gains power.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from backtest.store import Dataset
from backtest.synth import profile_for

PROFILE = profile_for("SPY")


def newey_west_t(x: np.ndarray, lags: int) -> float:
    """t-statistic of mean(x) with Bartlett-weighted autocovariances up to `lags`."""
    x = np.asarray(x, float)
    n = len(x)
    e = x - x.mean()
    var = e @ e / n
    for j in range(1, lags + 1):
        var += 2.0 * (1.0 - j / (lags + 1)) * (e[j:] @ e[:-j]) / n
    return float(x.mean() / np.sqrt(var / n))


class Market:
    """The columns the helpers need, for options with DTE up to max_dte, as pandas."""

    def __init__(self, path, max_dte: int = 45):
        ds = Dataset(path)
        t = ds.read_chains("SPY", columns=["quote_date", "expiration", "strike", "right", "bid", "ask", "delta",
                                             "vega", "underlying_price"])
        dte = pc.days_between(t["quote_date"], t["expiration"])
        t = t.append_column("dte", dte).filter(pc.less_equal(dte, max_dte))
        df = t.to_pandas()
        df["mid"] = 0.5 * (df["bid"] + df["ask"])
        regimes = ds.read_regimes("SPY").to_pandas().rename(columns={"date": "quote_date"})
        self.chain = df.merge(regimes, on="quote_date", how="left")
        bars = ds.read_underlying("SPY").to_pandas()
        self.close = pd.Series(bars["close"].to_numpy(), index=bars["date"])

    def entries(self, right: str, target_dte: int) -> pd.DataFrame:
        """Rows of `right` on each day's expiration nearest target_dte (earlier on ties)."""
        df = self.chain[(self.chain["right"] == right) & (self.chain["dte"] >= target_dte - 10)
                        & (self.chain["dte"] <= target_dte + 10)]
        dist = (df["dte"] - target_dte).abs()
        df = df[dist == dist.groupby(df["quote_date"]).transform("min")]
        return df[df["expiration"] == df.groupby("quote_date")["expiration"].transform("min")]

    def settle(self, trades: pd.DataFrame, right: str) -> pd.Series:
        """Discounted payoff at the expiration close of the `right` option at each trade's strike."""
        settle = self.close.reindex(trades["expiration"]).to_numpy()
        sign = 1.0 if right == "C" else -1.0
        return np.exp(-PROFILE.rate * trades["dte"] / 365.0) * np.maximum(sign * (settle - trades["strike"]), 0.0)

    def hedge_gain(self, trades: pd.DataFrame, right: str) -> np.ndarray:
        """Sum over each trade's life of delta[t] x the martingale increment of the underlying:
        the P&L of holding `delta` shares of a long option's hedge (negate to hedge a long)."""
        legs = trades[["quote_date", "expiration", "strike"]].reset_index(drop=True).rename(columns={"quote_date": "entry"})
        legs["trade"] = np.arange(len(legs))
        marks = self.chain[self.chain["right"] == right][["quote_date", "expiration", "strike", "delta"]]
        path = legs.merge(marks, on=["expiration", "strike"])
        path = path[(path["quote_date"] >= path["entry"]) & (path["quote_date"] < path["expiration"])]
        days = self.close.index
        nxt = pd.Series(days[1:], index=days[:-1])
        path = path[path["quote_date"].isin(nxt.index)]
        s0 = self.close.reindex(path["quote_date"]).to_numpy()
        d1 = nxt.reindex(path["quote_date"]).to_numpy()
        s1 = self.close.reindex(d1).to_numpy()
        gap = np.array([(b - a).days for a, b in zip(path["quote_date"], d1)]) / 365.0
        carry = np.exp((PROFILE.rate - PROFILE.div_yield) * gap)
        gain = path["delta"].to_numpy() * (s1 - s0 * carry)
        return np.bincount(path["trade"].to_numpy(), weights=gain, minlength=len(legs))

    def _done(self, trades: pd.DataFrame) -> pd.DataFrame:
        return trades[trades["expiration"] <= self.close.index[-1]].sort_values("quote_date").copy()

    def straddles(self, target_dte: int = 30) -> pd.DataFrame:
        """Long ATM straddle (strike nearest spot with both rights) every day; pnl and hedged_pnl."""
        calls, puts = self.entries("C", target_dte), self.entries("P", target_dte)
        both = calls.merge(puts[["quote_date", "strike", "mid"]], on=["quote_date", "strike"], suffixes=("_c", "_p"))
        both = self._done(both.loc[(both["strike"] - both["underlying_price"]).abs().groupby(both["quote_date"]).idxmin()])
        both["pnl"] = self.settle(both, "C") + self.settle(both, "P") - both["mid_c"] - both["mid_p"]
        both["hedged_pnl"] = both["pnl"] - self.hedge_gain(both, "C") - self.hedge_gain(both, "P")
        return both

    def short_options(self, right: str, abs_delta: float, target_dte: int = 30) -> pd.DataFrame:
        """Short the option with |delta| nearest abs_delta every day; pnl and hedged_pnl."""
        df = self.entries(right, target_dte)
        df = self._done(df.loc[(df["delta"].abs() - abs_delta).abs().groupby(df["quote_date"]).idxmin()])
        df["pnl"] = df["mid"] - self.settle(df, right)
        df["hedged_pnl"] = df["pnl"] + self.hedge_gain(df, right)
        return df
