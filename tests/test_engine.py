"""Hand-computed backtests: leg selection and entry premium of every structure under both fill
models, P&L of every exit reason, expiration in and out of the money, missing quotes, sizing,
read-only inputs and the look-ahead canary."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from backtest.bs_market import make_chains, to_index
from backtest.costs import Costs
from backtest.dna import StructureDNA, StructureType as T
from backtest.engine import run, run_many
from backtest.engine_nb import pick_by_delta
from hypothesis import given, settings
from hypothesis import strategies as st

D0 = dt.date(2021, 3, 1)  # Monday
FRONT = dt.date(2021, 3, 31)  # 30 DTE
BACK = dt.date(2021, 4, 30)  # 60 DTE
STRIKES = [85, 90, 95, 100, 105, 110, 115]
FRONT_CALLS = {85: (15.00, 15.20, .90), 90: (10.50, 10.70, .80), 95: (6.50, 6.70, .65), 100: (3.40, 3.60, .50),
               105: (1.40, 1.55, .35), 110: (0.50, 0.60, .20), 115: (0.15, 0.20, .10)}
FRONT_PUTS = {85: (0.15, 0.20, -.10), 90: (0.45, 0.55, -.20), 95: (1.30, 1.45, -.35), 100: (3.30, 3.50, -.50),
              105: (6.40, 6.60, -.65), 110: (10.40, 10.60, -.80), 115: (15.00, 15.20, -.90)}
BACK_CALL_DELTA = {85: .95, 90: .88, 95: .78, 100: .66, 105: .55, 110: .45, 115: .36}


def rows_for(day, exp, calls, puts):
    out = []
    for right, table in (("C", calls), ("P", puts)):
        for k, (b, a, d) in table.items():
            out.append(dict(quote_date=day, expiration=exp, strike=float(k), right=right, bid=b, ask=a, delta=d))
    return out


def snapshot(day=D0):
    back_calls = {k: (b + 1, a + 1, BACK_CALL_DELTA[k]) for k, (b, a, _) in FRONT_CALLS.items()}
    back_puts = {k: (b + 1, a + 1, round(BACK_CALL_DELTA[k] - 1, 2)) for k, (b, a, _) in FRONT_PUTS.items()}
    return rows_for(day, FRONT, FRONT_CALLS, FRONT_PUTS) + rows_for(day, BACK, back_calls, back_puts)


def make_index(rows, closes: dict, style="E"):
    chains = pd.DataFrame(rows).assign(underlying="TEST", root="TEST", style=style, underlying_price=100.0)
    chains = chains.sort_values(["quote_date", "expiration", "right", "strike"], ignore_index=True)
    return to_index(chains, pd.Series(closes).rename(index=pd.Timestamp))


GENOME = dict(front_dte_min=20, front_dte_max=40, back_dte_min=50, back_dte_max=70, long_strike_delta=0.35,
              short_strike_delta=0.20, spread_width_strikes=1)

# structure -> legs (expiration, right, strike, qty)
LEGS = {
    T.LONG_CALL: [(FRONT, "C", 105, 1)],
    T.LONG_PUT: [(FRONT, "P", 95, 1)],
    T.SHORT_CALL: [(FRONT, "C", 110, -1)],
    T.SHORT_PUT: [(FRONT, "P", 90, -1)],
    T.LONG_STRADDLE: [(FRONT, "C", 100, 1), (FRONT, "P", 100, 1)],
    T.SHORT_STRADDLE: [(FRONT, "C", 100, -1), (FRONT, "P", 100, -1)],
    T.LONG_STRANGLE: [(FRONT, "C", 105, 1), (FRONT, "P", 95, 1)],
    T.SHORT_STRANGLE: [(FRONT, "C", 110, -1), (FRONT, "P", 90, -1)],
    T.CALL_DEBIT_SPREAD: [(FRONT, "C", 105, 1), (FRONT, "C", 110, -1)],
    T.CALL_CREDIT_SPREAD: [(FRONT, "C", 110, -1), (FRONT, "C", 115, 1)],
    T.PUT_DEBIT_SPREAD: [(FRONT, "P", 95, 1), (FRONT, "P", 90, -1)],
    T.PUT_CREDIT_SPREAD: [(FRONT, "P", 90, -1), (FRONT, "P", 85, 1)],
    T.IRON_CONDOR: [(FRONT, "P", 90, -1), (FRONT, "P", 85, 1), (FRONT, "C", 110, -1), (FRONT, "C", 115, 1)],
    T.IRON_BUTTERFLY: [(FRONT, "C", 100, -1), (FRONT, "P", 100, -1), (FRONT, "P", 95, 1), (FRONT, "C", 105, 1)],
    T.CALENDAR_CALL: [(BACK, "C", 115, 1), (FRONT, "C", 115, -1)],
    T.CALENDAR_PUT: [(BACK, "P", 100, 1), (FRONT, "P", 100, -1)],
    T.DIAGONAL_CALL: [(BACK, "C", 115, 1), (FRONT, "C", 110, -1)],
    T.DIAGONAL_PUT: [(BACK, "P", 100, 1), (FRONT, "P", 90, -1)],
}


def quote(exp, right, k):
    b, a, _ = (FRONT_CALLS if right == "C" else FRONT_PUTS)[k]
    return (b, a) if exp == FRONT else (b + 1, a + 1)


@pytest.mark.parametrize("fill", ["cross", "legs_slippage"])
@pytest.mark.parametrize("structure", list(T))
def test_entry_legs_and_premium(structure, fill):
    index = make_index(snapshot(), {D0: 100.0})
    costs = Costs(fill=fill)
    result = run(StructureDNA(structure, **GENOME), index, costs=costs)
    assert len(result.trades) == 1
    trade = result.trades.iloc[0]
    legs = LEGS[structure]
    s = {"cross": 1.0, "legs_slippage": costs.slippage_by_legs[len(legs) - 1]}[fill]
    premium = 0.0
    for j, (exp, right, k, qty) in enumerate(legs, start=1):
        assert (trade[f"leg{j}_expiration"].date(), trade[f"leg{j}_right"], trade[f"leg{j}_strike"],
                trade[f"leg{j}_qty"]) == (exp, right, k, qty)
        bid, ask = quote(exp, right, k)
        price = bid + s * (ask - bid) if qty > 0 else ask - s * (ask - bid)  # cross: ask / bid
        assert trade[f"leg{j}_entry_fill"] == pytest.approx(price, abs=1e-6)
        premium -= qty * price
    assert trade["entry_premium"] == pytest.approx(premium, abs=1e-6)
    assert trade["exit_reason"] == "open_at_end"
    # entry-day equity: marked at mid, minus the half spread paid and the commissions
    mid_value = sum(q * sum(quote(e, r, k)) / 2 for e, r, k, q in legs)
    expected_pnl = trade["contracts"] * (100 * (premium + mid_value) - 0.65 * len(legs))
    assert result.equity["daily_pnl"].iloc[0] == pytest.approx(expected_pnl, abs=1e-3)


def test_iron_condor_premium_literal():
    index = make_index(snapshot(), {D0: 100.0})
    dna = StructureDNA(T.IRON_CONDOR, **GENOME)
    cross = run(dna, index).trades.iloc[0]
    slip = run(dna, index, costs=Costs(fill="legs_slippage")).trades.iloc[0]
    assert cross["entry_premium"] == pytest.approx(0.45 - 0.20 + 0.50 - 0.20, abs=1e-6)
    # s = 53% for four legs: 0.497 - 0.1765 + 0.547 - 0.1765
    assert slip["entry_premium"] == pytest.approx(0.691, abs=1e-6)
    # risk per unit: wider side 5.00 - credit 0.55, x100, + round-trip commissions 8 x 0.65
    assert cross["risk"] / cross["contracts"] == pytest.approx(445 + 5.2, abs=1e-3)
    assert cross["contracts"] == math.floor(100_000 * 0.05 / (445 + 5.2))


# ------------------------------------------------------------------ exits on a one-leg put
DAYS = [dt.date(2021, 3, d) for d in (1, 2, 3, 4, 5, 8, 9)]
EXP = dt.date(2021, 3, 9)  # 8 DTE on the first day


def put_market(marks, style="E", closes=None, missing=(), deltas=None):
    """One put (strike 100, expiring on the last day) quoted bid = mark - 0.05, ask = mark + 0.05."""
    rows = []
    for i, (day, m) in enumerate(zip(DAYS, marks)):
        # a far call keeps every day in the index when the put is missing
        rows.append(dict(quote_date=day, expiration=EXP, strike=150.0, right="C", bid=0.0, ask=0.05, delta=0.01))
        if i in missing:
            continue
        d = -0.4 if deltas is None else deltas[i]
        rows.append(dict(quote_date=day, expiration=EXP, strike=100.0, right="P", bid=m - 0.05, ask=m + 0.05, delta=d))
    closes = closes or {day: 100.0 for day in DAYS}
    return make_index(rows, closes, style)


SHORT_PUT = dict(front_dte_min=5, front_dte_max=10, short_strike_delta=0.4, long_strike_delta=0.4,
                 profit_target_pct=None, stop_loss_pct=None, dte_exit=None, max_positions=1)
ONCE = np.array([True] + [False] * (len(DAYS) - 1))


def one_trade(structure, index, costs=Costs(), **genes):
    result = run(StructureDNA(structure, **(SHORT_PUT | genes)), index, costs=costs, entry_mask=ONCE)
    assert len(result.trades) == 1
    return result, result.trades.iloc[0]


def test_profit_target_short_put():
    # sold at bid 1.95; day 3 mid 0.90 -> P&L 1.05 >= 0.5 x 1.95; bought back at ask 0.95
    index = put_market([2.0, 1.5, 0.9, 0.5, 0.4, 0.3, 0.2])
    result, trade = one_trade(T.SHORT_PUT, index, profit_target_pct=0.5)
    assert trade["exit_reason"] == "profit_target"
    assert trade["exit_date"].date() == DAYS[2]
    n = trade["contracts"]
    # naked put margin (European 15%): 1.95 + max(15 - 0, 10% x 100) = 16.95 per unit
    assert n == math.floor(100_000 * 0.05 / (16.95 * 100 + 2 * 0.65))
    assert trade["pnl"] == pytest.approx(n * ((1.95 - 0.95) * 100 - 2 * 0.65), abs=1e-3)
    assert result.equity["equity"].iloc[-1] == pytest.approx(100_000 + trade["pnl"], abs=1e-3)


def test_stop_loss_long_put():
    # bought at ask 2.05; day 2 mid 0.9: loss 1.15 >= 0.5 x 2.05; sold at bid 0.85
    index = put_market([2.0, 1.5, 0.9, 0.5, 0.4, 0.3, 0.2])
    _, trade = one_trade(T.LONG_PUT, index, stop_loss_pct=0.5)
    assert (trade["exit_reason"], trade["exit_date"].date()) == ("stop_loss", DAYS[2])
    n = trade["contracts"]
    assert n == math.floor(5000 / (2.05 * 100 + 2 * 0.65))
    assert trade["pnl"] == pytest.approx(n * ((0.85 - 2.05) * 100 - 2 * 0.65), abs=1e-3)


def test_profit_target_not_on_entry_day_and_dte_exit():
    # 9 Mar expiry: DTE on 5 Mar is 4 <= 4 -> exit at bid 0.35 (mid 0.4)
    index = put_market([2.0, 2.0, 2.0, 2.0, 0.4, 0.3, 0.2])
    _, trade = one_trade(T.LONG_PUT, index, dte_exit=4)
    assert (trade["exit_reason"], trade["exit_date"].date()) == ("dte_exit", DAYS[4])
    assert trade["pnl"] == pytest.approx(trade["contracts"] * ((0.35 - 2.05) * 100 - 1.3), abs=1e-3)


def test_delta_breach_on_short_leg():
    index = put_market([2.0] * 7, deltas=[-0.4, -0.45, -0.6, -0.7, -0.8, -0.9, -1.0])
    _, trade = one_trade(T.SHORT_PUT, index, delta_breach=0.55)
    assert (trade["exit_reason"], trade["exit_date"].date()) == ("delta_breach", DAYS[2])
    assert trade["pnl"] == pytest.approx(trade["contracts"] * ((1.95 - 2.05) * 100 - 1.3), abs=1e-3)


def test_max_hold_calendar_days():
    index = put_market([2.0] * 7)
    _, trade = one_trade(T.LONG_PUT, index, max_hold_days=3)  # 1 Mar + 3 days = 4 Mar
    assert (trade["exit_reason"], trade["exit_date"].date(), trade["days_held"]) == ("max_hold_days", DAYS[3], 3)


@pytest.mark.parametrize("close, style, fee", [(97.5, "E", 0.0), (97.5, "A", 1.0), (101.0, "E", 0.0), (101.0, "A", 1.0)])
def test_expiration_settles_at_intrinsic(close, style, fee):
    closes = {day: 100.0 for day in DAYS} | {DAYS[-1]: close}
    index = put_market([2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 9.0], style=style, closes=closes)
    _, trade = one_trade(T.LONG_PUT, index, costs=Costs(assignment_fee=fee))
    assert (trade["exit_reason"], trade["exit_date"].date()) == ("expiration", EXP)
    intrinsic = max(100.0 - close, 0.0)
    assert trade["leg1_exit_fill"] == pytest.approx(intrinsic)
    paid_fee = fee if intrinsic > 0 else 0.0  # the fee applies to American exercise only
    n = trade["contracts"]
    assert trade["pnl"] == pytest.approx(n * ((intrinsic - 2.05) * 100 - 0.65 - paid_fee), abs=1e-3)


def test_missing_quote_keeps_mark_and_exits_at_next_quote():
    # no quote on day 2 (mark stays 2.0) and on day 4, the day max-hold triggers -> exits day 5
    index = put_market([2.0, 2.0, 0.1, 2.0, 0.1, 1.0, 1.0], missing=(2, 4))
    result, trade = one_trade(T.LONG_PUT, index, max_hold_days=4)
    equity = result.equity.set_index("date")["equity"]
    n = trade["contracts"]
    assert equity.iloc[2] == equity.iloc[1]  # stale mark, no P&L
    assert (trade["exit_reason"], trade["exit_date"].date()) == ("max_hold_days", DAYS[5])
    assert trade["quote_gaps"] == 2 and result.quote_gaps == 2
    assert trade["pnl"] == pytest.approx(n * ((0.95 - 2.05) * 100 - 1.3), abs=1e-3)


def test_freed_slot_refilled_same_day():
    index = put_market([2.0] * 7)
    result = run(StructureDNA(T.LONG_PUT, **(SHORT_PUT | dict(max_hold_days=1))), index)
    t = result.trades
    assert list(t["exit_date"].iloc[:-1]) == list(t["entry_date"].iloc[1:])
    # one position at a time until the 5-10 DTE window closes (DTE 4 on 5 Mar)
    assert list(result.equity["open_positions"]) == [1, 1, 1, 1, 0, 0, 0]


def test_total_risk_cap_and_position_cap():
    index = put_market([2.0] * 7)
    genes = SHORT_PUT | dict(max_positions=5, max_position_pct=0.05, max_total_risk_pct=0.12)
    result = run(StructureDNA(T.LONG_PUT, **genes), index)
    per = math.floor(5000 / 206.3)
    assert list(result.trades["contracts"][:3]) == [per, per, math.floor((12000 - 2 * per * 206.3) / 206.3)]


# ------------------------------------------------------------------ read-only, run_many, canary

@pytest.fixture(scope="module")
def bs_market():
    chains, closes = make_chains(seed=7, n_days=70, strikes_each_side=12, vol=0.3)
    return chains, closes


def test_read_only_index_and_run_many_matches_run(bs_market):
    index = to_index(*bs_market).set_read_only()
    assert not index.bid.flags.writeable
    dnas = [StructureDNA(t, front_dte_min=10, front_dte_max=30, dte_exit=3, max_positions=2) for t in T]
    many = run_many(dnas, index, costs=Costs(fill="legs_slippage"))
    assert many.daily_pnl.shape == (len(T), index.n_days)
    for i, dna in enumerate(dnas):
        single = run(dna, index, costs=Costs(fill="legs_slippage"))
        np.testing.assert_array_equal(many.equity[i], single.equity["equity"])
        sel = many.trade_genome == i
        np.testing.assert_array_equal(many.trade_pnl[sel], single.trades["pnl"])
        assert many.metrics(i)["sharpe"] == single.metrics["sharpe"]
        assert many.metrics(i)["fill_model"] == "legs_slippage"
    assert many.n_trades.sum() > 50


def test_bytes_per_row(bs_market):
    index = to_index(*bs_market)
    assert index.nbytes / index.n_rows <= 24


def test_look_ahead_canary(bs_market):
    chains, closes = bs_market
    days = sorted(chains["quote_date"].unique())
    cut = days[40]
    rng = np.random.default_rng(1)
    later = chains["quote_date"] > cut
    future = chains[later].copy()
    noise = rng.uniform(0.2, 3.0, len(future)).astype(np.float32)
    future["bid"] = (future["bid"] * noise).astype(np.float32).astype(float)
    future["ask"] = future["bid"] + 0.05
    future["delta"] = rng.uniform(-1, 1, len(future)).astype(np.float32).astype(float)
    future = future.sample(frac=0.8, random_state=1).sort_values(["quote_date", "expiration", "right", "strike"])
    perturbed = pd.concat([chains[~later], future], ignore_index=True)
    closes2 = closes.where(closes.index <= pd.Timestamp(cut), closes * 1.3)
    dna = StructureDNA(T.IRON_CONDOR, front_dte_min=10, front_dte_max=40, dte_exit=2, delta_breach=0.4,
                       max_hold_days=20, max_positions=3)
    a = run(dna, to_index(chains, closes))
    b = run(dna, to_index(perturbed, closes2))
    n = 41
    np.testing.assert_array_equal(a.equity["equity"][:n], b.equity["equity"][:n])
    done_a = a.trades[a.trades["exit_date"] <= cut]
    done_b = b.trades[b.trades["exit_date"] <= cut]
    pd.testing.assert_frame_equal(done_a.reset_index(drop=True), done_b.reset_index(drop=True))
    entries = lambda r: r.trades.loc[r.trades["entry_date"] <= cut, ["entry_date", "leg1_strike", "leg1_entry_fill"]]  # noqa: E731
    pd.testing.assert_frame_equal(entries(a).reset_index(drop=True), entries(b).reset_index(drop=True))
    assert len(done_a) >= 2
    assert not a.equity["equity"].equals(b.equity["equity"])  # the perturbation mattered


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(st.sampled_from([0.0, 0.0, 0.05, 0.1, 0.125]), min_size=1, max_size=12),
       target=st.sampled_from([0.0, 0.05, 0.1, 0.2, 0.25, 0.3, 0.5, 0.7, 1.0]), is_call=st.booleans())
def test_binary_search_by_delta_equals_scan(steps, target, is_call):
    """On monotone sides (plateaus included) the binary search picks the scan's row."""
    levels = np.minimum(np.cumsum(steps), 1.0)  # |delta| rising with strike (puts)
    abs_delta = levels[::-1] if is_call else levels
    delta = (abs_delta if is_call else -abs_delta).astype(np.float32)
    n = len(delta)
    assert pick_by_delta(delta, 0, n, target, is_call, True) == pick_by_delta(delta, 0, n, target, is_call, False)
