import numpy as np
import pytest

from discovery import walkforward as wf


def test_layout_leaves_an_embargo_after_every_fold_and_a_lockbox_at_the_end():
    layout = wf.make_layout(1000, 4, 30, 200, 63)
    assert layout.lockbox == (800, 1000)
    ends = [f[1] for f in layout.folds]
    starts = [f[0] for f in layout.folds[1:]] + [layout.lockbox[0]]
    assert all(s - e == 30 for s, e in zip(starts, ends))
    assert layout.folds[0][0] == 0
    assert layout.entry_days().sum() == sum(b - a for a, b in layout.folds)
    assert not layout.entry_days()[ends[0]:starts[0]].any()
    with pytest.raises(ValueError):
        wf.make_layout(500, 4, 30, 200, 63)


def test_daily_returns_and_drawdown():
    pnl = np.array([0.0, 10.0, -20.0, 5.0])
    equity = 100.0 + np.cumsum(pnl)
    r = wf.daily_returns(pnl, equity)
    assert r == pytest.approx([0.0, 0.1, -20 / 110, 5 / 90])
    assert wf.max_drawdown(r) == pytest.approx(20 / 110)


def test_fold_fitness_purges_straddling_trades_and_penalises_few_trades():
    layout = wf.make_layout(600, 2, 20, 100, 50)
    rng = np.random.default_rng(0)
    returns = rng.normal(0.001, 0.01, 500)
    (a0, b0), (a1, b1) = layout.folds
    entry = np.array([a0 + 1, a0 + 5, a1 + 2, b1 + 3])       # the last is in a gap: never a fold trade
    exit_ = np.array([a0 + 10, a1 + 1, a1 + 9, b1 + 9])      # the second straddles into fold 1
    pnl = np.array([1.0, 2.0, -1.0, 5.0])
    m = wf.fold_fitness(returns, entry, exit_, pnl, layout, 0.9, min_trades=4, min_trades_penalty=0.1)
    assert m["straddling_trades"] == 1
    assert m["n_trades"] == 2 and m["fold_trades"] == [1, 1]
    assert m["fitness"] == pytest.approx(m["sharpe_lcb"] - 0.1 * 0.5)
    assert m["sharpe_lcb"] < m["sharpe"]
    assert m["n_days"] == sum(b - a for a, b in layout.series_spans())


def test_sharpe_lower_bound_tightens_with_more_data():
    short = wf.sharpe_lower_bound(0.1, 100, 0, 3, 0.9)
    long = wf.sharpe_lower_bound(0.1, 10000, 0, 3, 0.9)
    assert short < long < 0.1
