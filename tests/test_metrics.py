import math

import numpy as np
import pytest

from backtest.metrics import cagr, equity_metrics, max_drawdown, sharpe, sortino, trade_metrics


def test_equity_metrics_by_hand():
    equity = np.array([110.0, 99.0, 108.9])
    m = equity_metrics(equity, 100.0, calendar_days=365)
    r = np.array([0.10, -0.10, 0.10])
    assert m["total_return"] == pytest.approx(0.089)
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252))
    assert m["sortino"] == pytest.approx(r.mean() * math.sqrt(252) / math.sqrt(0.01 / 3))
    assert m["max_drawdown"] == pytest.approx(0.10)
    assert m["cagr"] == pytest.approx(1.089 ** (365.25 / 365) - 1)
    assert m["calmar"] == pytest.approx(m["cagr"] / 0.10)


def test_degenerate_curves():
    flat = np.full(10, 100.0)
    assert sharpe(np.zeros(10)) == 0.0 and sortino(np.zeros(10)) == 0.0
    assert max_drawdown(flat, 100.0) == 0.0
    assert sortino(np.array([0.01, 0.02])) == math.inf
    assert cagr(0.0, 100.0, 100) == -1.0
    assert equity_metrics(flat, 100.0, 14)["calmar"] == 0.0
    assert max_drawdown(np.array([90.0, 120.0, 60.0]), 100.0) == pytest.approx(0.5)


def test_trade_metrics_by_hand():
    m = trade_metrics(np.array([100.0, -50.0, 30.0, -20.0]), np.array([10, 5, 3, 2]), np.array([500.0] * 4))
    assert m == {"n_trades": 4, "win_rate": 0.5, "profit_factor": pytest.approx(130 / 70), "avg_pnl": 15.0,
                 "avg_days_held": 5.0, "return_on_margin": pytest.approx(60 / 2000)}
    assert trade_metrics(np.array([]), np.array([]), np.array([]))["n_trades"] == 0
    assert trade_metrics(np.array([5.0]), np.array([1]), np.array([10.0]))["profit_factor"] == math.inf
