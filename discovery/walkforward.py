"""Walk-forward layout and fitness over the engine's daily P&L.

Layout on the trading-day axis of the data (indices 0..D-1):

    | fold 0 | gap | fold 1 | gap | ... | fold K-1 | gap | lockbox |

Each gap (embargo) is at least the longest holding period the search space allows (the config
rejects shorter ones). Entries are allowed only on fold days, so every trade entered in fold k
has closed before fold k+1 begins: a fold's P&L series is its own days plus the gap after it, and
the folds are independent samples. A genome has nothing to fit, so every fold is a test fold;
but the search *selects* on them, which makes them in-sample for the procedure (Bailey & López
de Prado). The lockbox at the end is never shown to the search and is evaluated once, at the end,
for the reported structures: it is the only out-of-sample evidence.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from discovery import honesty


@dataclass(frozen=True)
class FoldLayout:
    n_days: int
    folds: tuple[tuple[int, int], ...]   # [start, end) day indices of each fold's entry days
    embargo: int
    lockbox: tuple[int, int]             # [start, end)

    def series_spans(self) -> list[tuple[int, int]]:
        """Days whose P&L belongs to each fold: the fold plus its trailing embargo."""
        starts = [f[0] for f in self.folds] + [self.lockbox[0]]
        return [(starts[k], starts[k + 1]) for k in range(len(self.folds))]

    def entry_days(self) -> np.ndarray:
        """Boolean over the training span [0, lockbox start): True on fold days."""
        mask = np.zeros(self.lockbox[0], dtype=bool)
        for start, end in self.folds:
            mask[start:end] = True
        return mask

    def to_dict(self) -> dict:
        return {"n_days": self.n_days, "folds": [list(f) for f in self.folds], "embargo": self.embargo,
                "lockbox": list(self.lockbox)}

    @classmethod
    def from_dict(cls, data: dict) -> "FoldLayout":
        return cls(int(data["n_days"]), tuple((int(a), int(b)) for a, b in data["folds"]), int(data["embargo"]),
                   (int(data["lockbox"][0]), int(data["lockbox"][1])))


def make_layout(n_days: int, n_folds: int, embargo: int, lockbox_days: int, min_fold_days: int) -> FoldLayout:
    train = n_days - lockbox_days - n_folds * embargo
    fold_len = train // n_folds
    if fold_len < min_fold_days:
        raise ValueError(f"{n_days} days leave folds of {fold_len} days (< {min_fold_days})")
    folds = []
    start = 0
    for k in range(n_folds):
        end = start + fold_len + (train - fold_len * n_folds if k == n_folds - 1 else 0)
        folds.append((start, end))
        start = end + embargo
    return FoldLayout(n_days, tuple(folds), embargo, (n_days - lockbox_days, n_days))


def daily_returns(daily_pnl: np.ndarray, equity: np.ndarray) -> np.ndarray:
    """Daily mark-to-market returns: P&L over the previous day's equity (REFERENCES: daily, not per trade)."""
    previous = equity - daily_pnl
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(previous > 0, daily_pnl / np.where(previous > 0, previous, 1.0), 0.0)
    return out


def max_drawdown(returns: np.ndarray) -> float:
    """Largest peak-to-trough loss of the compounded curve, as a positive share."""
    if returns.size == 0:
        return 0.0
    curve = np.cumprod(1.0 + returns)
    peak = np.maximum.accumulate(np.concatenate([[1.0], curve]))[1:]
    return float(np.max(1.0 - curve / peak))


def sharpe_lower_bound(sr: float, n_obs: int, skew: float, kurtosis: float, confidence: float) -> float:
    """One-sided lower confidence bound of a per-period Sharpe ratio, with the standard error of
    Bailey & López de Prado (2012) (Mertens' non-normal correction)."""
    if n_obs < 2:
        return -math.inf
    se = math.sqrt(max(1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr, 1e-12) / (n_obs - 1))
    return sr - stats.norm.ppf(confidence) * se


def series_metrics(returns: np.ndarray, trade_pnl: np.ndarray) -> dict:
    """Plain metrics of one daily return series and the P&L of its trades."""
    sr = honesty.sharpe(returns) if returns.size > 1 else 0.0
    skew, kurt = honesty.moments(returns)
    return {
        "sharpe": float(sr),
        "sharpe_annual": float(honesty.annualise(sr)),
        "skew": skew,
        "kurtosis": kurt,
        "n_days": int(returns.size),
        "total_return": float(np.prod(1.0 + returns) - 1.0),
        "max_drawdown": max_drawdown(returns),
        "n_trades": int(trade_pnl.size),
        "win_rate": float(np.mean(trade_pnl > 0)) if trade_pnl.size else 0.0,
        "mean_trade_pnl": float(trade_pnl.mean()) if trade_pnl.size else 0.0,
    }


def fold_fitness(returns: np.ndarray, trade_entry: np.ndarray, trade_exit: np.ndarray, trade_pnl: np.ndarray,
                 layout: FoldLayout, confidence: float, min_trades: int, min_trades_penalty: float) -> dict:
    """Fitness of one genome from its daily returns over the training span and its trades.

    Fitness = lower confidence bound of the daily Sharpe of the folds' pooled series, minus a
    penalty growing linearly as the trade count falls below ``min_trades``. Trades that straddle
    into the next fold (impossible when the embargo covers the longest hold) are counted and
    purged from the trade statistics.
    """
    spans = layout.series_spans()
    pooled = pooled_fold_returns(returns, layout)
    fold_of_entry = np.full(trade_entry.shape, -1)
    for k, (a, b) in enumerate(layout.folds):
        fold_of_entry[(trade_entry >= a) & (trade_entry < b)] = k
    series_end = np.array([b for _, b in spans])
    in_fold = fold_of_entry >= 0
    straddling = in_fold & (trade_exit >= series_end[np.maximum(fold_of_entry, 0)])
    kept = in_fold & ~straddling
    metrics = series_metrics(pooled, trade_pnl[kept])
    lcb = sharpe_lower_bound(metrics["sharpe"], metrics["n_days"], metrics["skew"], metrics["kurtosis"], confidence)
    shortfall = max(0, min_trades - metrics["n_trades"]) / min_trades if min_trades else 0.0
    fold_sharpes = [float(honesty.sharpe(returns[a:b])) for a, b in spans]
    return {
        **metrics,
        "sharpe_lcb": lcb,
        "fitness": lcb - min_trades_penalty * shortfall,
        "fold_sharpe": fold_sharpes,
        "fold_trades": [int(np.sum(kept & (fold_of_entry == k))) for k in range(len(spans))],
        "straddling_trades": int(straddling.sum()),
    }


def pooled_fold_returns(returns: np.ndarray, layout: FoldLayout) -> np.ndarray:
    return np.concatenate([returns[a:b] for a, b in layout.series_spans()])
