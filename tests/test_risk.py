"""Portfolio risk layer: each limit constructed and checked day by day, the sweep equals plain
engine runs with its final masks, no look-ahead, and stress figures against a full repricing."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq

from backtest.bs_market import make_chains, to_index
from backtest.dna import StructureDNA
from backtest.engine import run, run_many
from backtest.errors import UserError
from backtest.pricing import bs_greeks
from backtest.risk import RiskLimits, Sleeve, run_portfolio, stress_report
from models.baselines import catalog


def dna(structure, **genes):
    return StructureDNA.from_dict({"structure_type": structure, **genes})


@pytest.fixture(scope="module")
def market():
    chains, closes = make_chains(seed=11, n_days=90, vol=0.35, strikes_each_side=20)
    return chains, closes, to_index(chains, closes)


def sleeves():
    return [
        Sleeve("short_puts", dna("put_credit_spread", front_dte_min=20, front_dte_max=35, short_strike_delta=0.35,
                                 max_positions=6, max_position_pct=0.08, stop_loss_pct=None, profit_target_pct=None)),
        Sleeve("condors", dna("iron_condor", front_dte_min=14, front_dte_max=30, short_strike_delta=0.25,
                              max_positions=6, max_position_pct=0.05)),
        Sleeve("straddles", dna("long_straddle", front_dte_min=20, front_dte_max=40, max_positions=3,
                                max_position_pct=0.04)),
    ]


def entry_days(result, j):
    return set(result.results[j].trade_entry_day.tolist())


def all_entry_days(result):
    return set().union(*(entry_days(result, j) for j in range(len(result.results))))


def test_final_masks_reproduce_plain_engine_runs(market):
    *_, index = market
    limits = RiskLimits(max_total_risk=0.15, daily_loss=0.01, weekly_loss=0.03, max_delta=0.4)
    res = run_portfolio(sleeves(), index, limits=limits)
    assert res.reruns > 0 and sum(res.blocked_entries.values()) > 0
    plain = run_many([s.dna for s in sleeves()], index, entry_masks=res.masks)
    np.testing.assert_allclose(res.daily_pnl, plain.daily_pnl.sum(axis=0), atol=1e-6)
    np.testing.assert_allclose(res.equity, 100_000 + np.cumsum(plain.daily_pnl.sum(axis=0)), atol=1e-6)
    assert res.metrics()["n_trades"] == int(sum(
        np.sum(plain.trade_reason[plain.trade_genome == g] != 7) for g in range(3)))


def test_no_limits_is_the_unconstrained_run(market):
    *_, index = market
    res = run_portfolio(sleeves(), index)
    assert res.reruns == 0 and res.masks.all()
    plain = run_many([s.dna for s in sleeves()], index)
    np.testing.assert_allclose(res.daily_pnl, plain.daily_pnl.sum(axis=0), atol=1e-6)


@pytest.mark.parametrize("limit", [0.004, catalog.volmachine().limits.daily_loss])  # 3%: seed 003
def test_daily_loss_limit_stops_entries_the_next_day(market, limit):
    *_, index = market
    res = run_portfolio(sleeves(), index, limits=RiskLimits(daily_loss=limit))
    prev = np.concatenate(([100_000.0], res.equity[:-1]))
    lossy = np.flatnonzero(res.daily_pnl <= -limit * prev)
    assert len(lossy) and res.blocked_entries["daily_loss"] > 0
    entries = all_entry_days(res)
    assert not entries & set((lossy + 1).tolist())
    assert entries - set((lossy + 1).tolist())  # other days still trade


def test_weekly_loss_limit_blocks_the_rest_of_the_week(market):
    *_, index = market
    limit = 0.006
    res = run_portfolio(sleeves(), index, limits=RiskLimits(weekly_loss=limit))
    weeks = pd.DatetimeIndex(res.dates.astype("datetime64[ns]")).isocalendar()
    key = list(zip(weeks["year"], weeks["week"]))
    start_equity, blocked_days = 100_000.0, set()
    prev = 100_000.0
    for t in range(len(res.dates)):
        if t == 0 or key[t] != key[t - 1]:
            start_equity = prev
        if prev - start_equity <= -limit * start_equity:
            blocked_days.add(t)
        prev = res.equity[t]
    assert blocked_days and res.blocked_entries["weekly_loss"] > 0
    assert not all_entry_days(res) & blocked_days


@pytest.mark.parametrize("limit", [0.03, catalog.multi_book().limits.max_drawdown,  # 10%: seed 002
                                   catalog.volmachine().limits.max_drawdown])  # 15%: seed 003
def test_drawdown_kill_switch_blocks_every_later_entry(market, limit):
    *_, index = market
    res = run_portfolio(sleeves(), index, limits=RiskLimits(max_drawdown=limit))
    assert res.kill_date is not None
    kill = int(np.flatnonzero(res.dates == res.kill_date)[0])
    curve = np.concatenate(([100_000.0], res.equity))
    drawdown = 1.0 - curve / np.maximum.accumulate(curve)
    assert drawdown[kill] >= limit > drawdown[:kill].max()  # the first day after the breach
    assert max(all_entry_days(res)) < kill
    assert not res.masks[:, kill:].any()
    # before the kill switch, the account traded as without it
    free = run_portfolio(sleeves(), index)
    np.testing.assert_allclose(res.equity[:kill], free.equity[:kill], atol=1e-6)


def test_total_risk_cap_holds_after_every_entry(market):
    *_, index = market
    cap = 0.12
    res = run_portfolio(sleeves(), index, limits=RiskLimits(max_total_risk=cap))
    assert res.blocked_entries["total_risk"] > 0
    trades = pd.concat([pd.DataFrame({"entry": r.trade_entry_day, "exit": r.trade_exit_day, "risk": r.trade_risk,
                                      "open_end": r.trade_reason == 7}) for r in res.results])
    for t in sorted(set(trades["entry"])):
        still_open = (trades["entry"] <= t) & ((trades["exit"] > t) | trades["open_end"])
        equity_before = res.equity[t - 1] if t else 100_000.0
        assert trades.loc[still_open, "risk"].sum() <= cap * equity_before + 1e-6


def test_delta_limit_blocks_entries_while_exceeded(market):
    *_, index = market
    limit = 0.5
    res = run_portfolio(sleeves(), index, limits=RiskLimits(max_delta=limit))
    prev = np.concatenate(([100_000.0], res.equity[:-1]))
    over = set(np.flatnonzero(np.abs(res.delta_usd) > limit * prev).tolist())
    assert over and res.blocked_entries["delta"] > 0
    assert not all_entry_days(res) & over


def test_no_look_ahead_a_shorter_window_decides_the_same(market):
    *_, index = market
    limits = RiskLimits(max_total_risk=0.15, daily_loss=0.005, max_drawdown=0.05, max_delta=0.5)
    full = run_portfolio(sleeves(), index, limits=limits)
    cut = 60
    short = run_portfolio(sleeves(), index, end=index.dates[cut - 1], limits=limits)
    np.testing.assert_array_equal(short.masks, full.masks[:, :cut])
    np.testing.assert_allclose(short.equity, full.equity[:cut], atol=1e-6)


def test_bad_limits_and_sleeves_are_user_errors(market):
    *_, index = market
    with pytest.raises(UserError, match="daily_loss: 1.5"):
        RiskLimits(daily_loss=1.5)
    with pytest.raises(UserError, match="unique"):
        run_portfolio([sleeves()[0], sleeves()[0]], index)


def implied(mid, is_call, s, k, t):
    return brentq(lambda v: float(bs_greeks(is_call, s, k, t, 0.0, 0.0, v).price) - mid, 1e-4, 5.0, xtol=1e-14)


def oracle_legs(chains, closes, index, day, entered_today: bool, masks=None):
    """Legs open at window day ``day`` from plain runs' trade logs, each with its chain quote's
    mid and the volatility brentq finds for it: (size, is_call, strike, years, vol, mid); a leg
    the chain does not quote that day is left out, as the risk layer leaves it out."""
    today = pd.Timestamp(index.dates[day])
    quotes = chains[chains["quote_date"] == today].set_index(["expiration", "right", "strike"])
    spot = float(closes[today])
    legs = []
    for j, s in enumerate(sleeves()):
        trades = run(s.dna, index, entry_mask=None if masks is None else masks[j]).trades
        entered = trades["entry_date"] <= today if entered_today else trades["entry_date"] < today
        open_now = trades[entered & ((trades["exit_date"] > today) | (trades["exit_reason"] == "open_at_end"))]
        for _, tr in open_now.iterrows():
            for i in range(1, 5):
                if tr[f"leg{i}_qty"]:
                    is_call, k, exp = tr[f"leg{i}_right"] == "C", tr[f"leg{i}_strike"], tr[f"leg{i}_expiration"]
                    if (exp, "C" if is_call else "P", k) not in quotes.index:
                        continue
                    q = quotes.loc[(exp, "C" if is_call else "P", k)]
                    mid = (float(q["bid"]) + float(q["ask"])) / 2
                    t = (exp - today).days / 365.0
                    legs.append((tr["contracts"] * tr[f"leg{i}_qty"] * 100, is_call, k, t,
                                 implied(mid, is_call, spot, k, t), mid))
    return spot, legs


def test_stress_matches_full_repricing_of_the_open_legs(market):
    chains, closes, index = market
    res = run_portfolio(sleeves(), index)
    day = 45
    report = stress_report(res, index, res.dates[day])
    spot, legs = oracle_legs(chains, closes, index, day, entered_today=True)
    assert len(legs) == report["open_legs"] >= 4 and report["unpriced_legs"] == 0
    assert report["position_value"] == pytest.approx(sum(size * mid for size, *_, mid in legs), rel=1e-9)
    for scenario in report["scenarios"]:
        expected = sum(size * (float(bs_greeks(c, spot * (1 + scenario["spot_shock"]), k, t, 0, 0,
                                                 v + scenario["vol_shock"]).price)
                               - float(bs_greeks(c, spot, k, t, 0, 0, v).price))
                       for size, c, k, t, v, _ in legs)
        assert scenario["pnl"] == pytest.approx(expected, rel=1e-7, abs=1e-6)
    shocks = {(s["spot_shock"], s["vol_shock"]) for s in report["scenarios"]}
    assert {(-0.05, 0.0), (0.05, 0.0), (0.0, -0.05), (0.0, 0.05)} <= shocks


def test_portfolio_greeks_match_the_pricer_at_implied_vols(market):
    chains, closes, index = market
    res = run_portfolio(sleeves(), index, limits=RiskLimits(max_delta=1.0))
    for day in (30, 61):
        spot, legs = oracle_legs(chains, closes, index, day, entered_today=False, masks=res.masks)
        assert legs
        g = [bs_greeks(c, spot, k, t, 0, 0, v) for _, c, k, t, v, _ in legs]
        delta = sum(size * float(x.delta) * spot for (size, *_), x in zip(legs, g))
        vega = sum(size * float(x.vega) for (size, *_), x in zip(legs, g))
        assert res.delta_usd[day] == pytest.approx(delta, rel=1e-7)
        assert res.vega_usd[day] == pytest.approx(vega, rel=1e-7)


def test_short_vega_limit_blocks_entries_while_exceeded(market):
    *_, index = market
    limit = 0.005
    res = run_portfolio(sleeves(), index, limits=RiskLimits(max_short_vega=limit))
    prev = np.concatenate(([100_000.0], res.equity[:-1]))
    over = set(np.flatnonzero(res.vega_usd < -limit * prev).tolist())
    assert over and res.blocked_entries["vega"] > 0
    assert not all_entry_days(res) & over


def test_stress_report_of_a_flat_book_and_a_bad_date(market):
    *_, index = market
    res = run_portfolio([Sleeve("never", sleeves()[0].dna, np.zeros(index.n_days, dtype=bool))], index)
    report = stress_report(res, index)
    assert report["open_legs"] == 0 and all(s["pnl"] == 0.0 for s in report["scenarios"])
    with pytest.raises(UserError, match="not a trading day"):
        stress_report(res, index, "2021-01-02")
