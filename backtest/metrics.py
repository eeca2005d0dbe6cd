"""Performance metrics of DESIGN §4: from the daily mark-to-market equity curve (total return,
CAGR, Sharpe, Sortino, max drawdown, Calmar) and from closed trades (count, win rate, profit
factor, average P&L, average days held, return on margin).

Conventions: daily simple returns of equity, the first against the initial equity; Sharpe and
Sortino annualised with sqrt(252), Sortino's downside deviation is the root mean square of the
negative returns (zero for gains); a flat curve has Sharpe 0; a ratio whose denominator is zero
is +inf for a positive numerator and 0 otherwise. CAGR uses calendar time (365.25-day years)
from the day before the first day (the initial equity) to the last.
"""
from __future__ import annotations

import math

import numpy as np

TRADING_DAYS = 252
EQUITY_METRICS = ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar")
TRADE_METRICS = ("n_trades", "win_rate", "profit_factor", "avg_pnl", "avg_days_held", "return_on_margin")


def _ratio(num: float, den: float) -> float:
    if den > 0:
        return float(num / den)
    return math.inf if num > 0 else 0.0


def daily_returns(equity: np.ndarray, initial_equity: float) -> np.ndarray:
    prev = np.concatenate(([initial_equity], equity[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(prev > 0, equity / prev - 1.0, 0.0)
    return out


def sharpe(returns: np.ndarray) -> float:
    if len(returns) < 2:
        return 0.0
    sd = float(np.std(returns, ddof=1))
    return float(np.mean(returns) / sd * math.sqrt(TRADING_DAYS)) if sd > 0 else 0.0


def sortino(returns: np.ndarray) -> float:
    if not len(returns):
        return 0.0
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    return _ratio(float(np.mean(returns)) * math.sqrt(TRADING_DAYS), downside)


def max_drawdown(equity: np.ndarray, initial_equity: float) -> float:
    """Largest fall from a running peak (the initial equity counts), as a positive share."""
    if not len(equity):
        return 0.0
    peak = np.maximum.accumulate(np.concatenate(([initial_equity], equity)))
    return float(np.max(1.0 - np.concatenate(([initial_equity], equity)) / peak))


def cagr(final_equity: float, initial_equity: float, calendar_days: int) -> float:
    if final_equity <= 0:
        return -1.0
    years = calendar_days / 365.25
    growth = final_equity / initial_equity
    return float(growth ** (1.0 / years) - 1.0) if years > 0 else float(growth - 1.0)


def equity_metrics(equity: np.ndarray, initial_equity: float, calendar_days: int) -> dict[str, float]:
    equity = np.asarray(equity, dtype=np.float64)
    final = float(equity[-1]) if len(equity) else initial_equity
    rets = daily_returns(equity, initial_equity)
    growth = cagr(final, initial_equity, calendar_days)
    dd = max_drawdown(equity, initial_equity)
    return {
        "total_return": final / initial_equity - 1.0,
        "cagr": growth,
        "sharpe": sharpe(rets),
        "sortino": sortino(rets),
        "max_drawdown": dd,
        "calmar": _ratio(growth, dd),
    }


def trade_metrics(pnl: np.ndarray, days_held: np.ndarray, risk: np.ndarray) -> dict[str, float]:
    """Metrics of closed trades; ``risk`` is each trade's capital at risk (max loss or margin)."""
    pnl = np.asarray(pnl, dtype=np.float64)
    n = len(pnl)
    if not n:
        return dict.fromkeys(TRADE_METRICS, 0.0) | {"n_trades": 0}
    wins, losses = pnl[pnl > 0].sum(), -pnl[pnl < 0].sum()
    return {
        "n_trades": n,
        "win_rate": float(np.mean(pnl > 0)),
        "profit_factor": _ratio(float(wins), float(losses)),
        "avg_pnl": float(pnl.mean()),
        "avg_days_held": float(np.mean(days_held)),
        "return_on_margin": float(pnl.sum() / np.sum(risk)),  # every trade has risk > 0
    }
