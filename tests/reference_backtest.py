"""A deliberately simple pandas implementation of the backtest contract (DESIGN §4).

It shares no code with the numba kernels: it filters each day's chain with pandas and keeps
positions as plain dicts, so that each rule reads like the contract. Tests cross-check the
kernels against it trade by trade; the benchmark uses it as the speed baseline.

Conventions shared with the engine (documented in README "Backtest"): exit checks use the marked
P&L per unit without costs against |entry premium|; risk per unit is the max loss (or Reg-T
margin for naked shorts) plus round-trip commissions; one entry per day at most; holding days
are calendar days; a leg at or past expiration settles at intrinsic against that day's close.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from backtest.costs import Costs
from backtest.dna import StructureDNA, StructureType as T

SHORT_NAKED = {T.SHORT_CALL, T.SHORT_PUT, T.SHORT_STRADDLE, T.SHORT_STRANGLE}
CREDIT_WINGED = {T.CALL_CREDIT_SPREAD, T.PUT_CREDIT_SPREAD, T.IRON_CONDOR, T.IRON_BUTTERFLY}


def choose_expiration(snap: pd.DataFrame, day, lo: int, hi: int):
    exps = pd.Series(sorted(snap["expiration"].unique()))
    dte = exps.map(lambda e: (e - day).days)
    ok = exps[(dte >= lo) & (dte <= hi)]
    if ok.empty:
        return None
    dist = (dte[ok.index] - (lo + hi) / 2).abs()
    return ok[dist == dist.min()].iloc[0]  # earliest among the closest


def side(snap: pd.DataFrame, expiration, right: str) -> pd.DataFrame:
    rows = snap[(snap["expiration"] == expiration) & (snap["right"] == right)]
    return rows.sort_values("strike").reset_index(drop=True)


def by_delta(rows: pd.DataFrame, target: float, right: str):
    """Position (in rows) of the strike whose |delta| is closest to target."""
    dist = (rows["delta"].abs() - target).abs().dropna()
    if dist.empty:
        return None
    tied = dist[dist == dist.min()].index
    return tied.max() if right == "C" else tied.min()


def at_strike(rows: pd.DataFrame, strike: float):
    hit = rows.index[rows["strike"] == strike]
    return hit[0] if len(hit) else None


def leg(rows: pd.DataFrame, pos, qty: int) -> dict:
    r = rows.loc[pos]
    return {"expiration": r["expiration"], "root": r["root"], "right": r["right"], "strike": r["strike"],
            "qty": qty, "european": r["style"] == "E", "bid": r["bid"], "ask": r["ask"]}


def build(dna: StructureDNA, snap: pd.DataFrame, day) -> list[dict] | None:
    st = dna.structure_type
    front = choose_expiration(snap, day, dna.front_dte_min, dna.front_dte_max)
    if front is None:
        return None
    calls, puts = side(snap, front, "C"), side(snap, front, "P")
    w = dna.spread_width_strikes
    if st in (T.LONG_CALL, T.SHORT_CALL, T.LONG_PUT, T.SHORT_PUT):
        long_ = st in (T.LONG_CALL, T.LONG_PUT)
        right = "C" if st in (T.LONG_CALL, T.SHORT_CALL) else "P"
        rows = calls if right == "C" else puts
        p = by_delta(rows, dna.long_strike_delta if long_ else dna.short_strike_delta, right)
        return None if p is None else [leg(rows, p, 1 if long_ else -1)]
    if st in (T.LONG_STRADDLE, T.SHORT_STRADDLE, T.IRON_BUTTERFLY):
        c = by_delta(calls, 0.5, "C")
        if c is None:
            return None
        p = at_strike(puts, calls.loc[c, "strike"])
        if p is None:
            return None
        q = 1 if st == T.LONG_STRADDLE else -1
        legs = [leg(calls, c, q), leg(puts, p, q)]
        if st != T.IRON_BUTTERFLY:
            return legs
        if p - w < 0 or c + w >= len(calls):
            return None
        return legs + [leg(puts, p - w, 1), leg(calls, c + w, 1)]
    if st in (T.LONG_STRANGLE, T.SHORT_STRANGLE):
        long_ = st == T.LONG_STRANGLE
        target = dna.long_strike_delta if long_ else dna.short_strike_delta
        c, p = by_delta(calls, target, "C"), by_delta(puts, target, "P")
        if c is None or p is None:
            return None
        q = 1 if long_ else -1
        return [leg(calls, c, q), leg(puts, p, q)]
    if st in (T.CALL_DEBIT_SPREAD, T.CALL_CREDIT_SPREAD, T.PUT_DEBIT_SPREAD, T.PUT_CREDIT_SPREAD, T.IRON_CONDOR):
        rights = ["P", "C"] if st == T.IRON_CONDOR else (
            ["C"] if st in (T.CALL_DEBIT_SPREAD, T.CALL_CREDIT_SPREAD) else ["P"])
        debit = st in (T.CALL_DEBIT_SPREAD, T.PUT_DEBIT_SPREAD)
        legs = []
        for right in rights:
            rows = calls if right == "C" else puts
            a = by_delta(rows, dna.long_strike_delta if debit else dna.short_strike_delta, right)
            if a is None:
                return None
            wing = a + w if right == "C" else a - w  # further out of the money
            if wing < 0 or wing >= len(rows):
                return None
            legs += [leg(rows, a, 1 if debit else -1), leg(rows, wing, -1 if debit else 1)]
        return legs
    # calendars / diagonals
    right = "C" if st in (T.CALENDAR_CALL, T.DIAGONAL_CALL) else "P"
    back = choose_expiration(snap, day, dna.back_dte_min, dna.back_dte_max)
    if back is None or back <= front:
        return None
    back_rows, front_rows = side(snap, back, right), (calls if right == "C" else puts)
    b = by_delta(back_rows, dna.long_strike_delta, right)
    if b is None:
        return None
    if st in (T.CALENDAR_CALL, T.CALENDAR_PUT):
        f = at_strike(front_rows, back_rows.loc[b, "strike"])
    else:
        f = by_delta(front_rows, dna.short_strike_delta, right)
    if f is None:
        return None
    return [leg(back_rows, b, 1), leg(front_rows, f, -1)]


def fill(bid: float, ask: float, buy: bool, share: float) -> float:
    return bid + share * (ask - bid) if buy else ask - share * (ask - bid)


def risk_unit(st: T, legs: list[dict], premium: float, spot: float, costs: Costs) -> float:
    """Max loss per unit (price units); Reg-T margin for naked shorts (REFERENCES.md)."""
    if st in SHORT_NAKED:
        pct = costs.naked_margin_index if legs[0]["european"] else costs.naked_margin_equity

        def margin(lg):
            k = lg["strike"]
            otm = max(k - spot, 0.0) if lg["right"] == "C" else max(spot - k, 0.0)
            floor = costs.naked_margin_floor * (spot if lg["right"] == "C" else k)
            return lg["fill"] + max(pct * spot - otm, floor)

        if len(legs) == 1:
            return margin(legs[0])
        m = [margin(lg) for lg in legs]
        return m[0] + legs[1]["fill"] if m[0] >= m[1] else m[1] + legs[0]["fill"]
    if st in CREDIT_WINGED:
        widths = [abs(s["strike"] - lg["strike"]) for s in legs for lg in legs
                  if s["qty"] < 0 < lg["qty"] and s["right"] == lg["right"]]
        return max(widths) - premium
    if st in (T.DIAGONAL_CALL, T.DIAGONAL_PUT):
        back, front = legs
        gap = back["strike"] - front["strike"] if back["right"] == "C" else front["strike"] - back["strike"]
        return -premium + max(gap, 0.0)
    return -premium


def reference_backtest(chains: pd.DataFrame, closes: pd.Series, dna: StructureDNA,
                       costs: Costs = Costs(), mask=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trades, equity) of one genome over every day in ``chains``."""
    chains = chains.assign(quote_date=pd.to_datetime(chains["quote_date"]),
                           expiration=pd.to_datetime(chains["expiration"]))
    closes = pd.Series(np.asarray(closes, dtype=float), index=pd.to_datetime(closes.index))
    shares = costs.slippage_shares
    mult, commission = costs.multiplier, costs.commission_per_contract
    days = sorted(chains["quote_date"].unique())
    snaps = dict(tuple(chains.groupby("quote_date")))
    cash = costs.initial_equity
    open_pos: list[dict] = []
    trades: list[dict] = []
    equity_rows = []
    for t, day in enumerate(days):
        snap = snaps[day]
        close = closes.get(day, snap["underlying_price"].iloc[0])
        quotes = {(r.expiration, r.root, r.right, r.strike): r for r in snap.itertuples()}
        # mark
        for pos in open_pos:
            for lg in pos["legs"]:
                if not lg["open"]:
                    continue
                q = quotes.get((lg["expiration"], lg["root"], lg["right"], lg["strike"]))
                lg["quote"] = q
                lg["delta"] = q.delta if q is not None else math.nan
                if q is not None:
                    lg["mark"] = (q.bid + q.ask) / 2
                elif lg["expiration"] > day:
                    pos["gaps"] += 1
        # settle, exit
        for pos in list(open_pos):
            legs, n = pos["legs"], len(pos["legs"])
            for lg in legs:
                if lg["open"] and lg["expiration"] <= day:
                    k = lg["strike"]
                    intrinsic = max(close - k, 0.0) if lg["right"] == "C" else max(k - close, 0.0)
                    fee = costs.assignment_fee if intrinsic > 0 and not lg["european"] else 0.0
                    flow = pos["contracts"] * (lg["qty"] * intrinsic * mult - fee)
                    cash += flow
                    pos["cash"] += flow
                    lg.update(open=False, exit_fill=intrinsic, mark=intrinsic)
                    if pos["reason"] is None:
                        pos["reason"] = "expiration"
            if pos["reason"] is None and t > pos["entry_t"]:
                pnl = sum(lg["qty"] * (lg["mark"] - lg["fill"]) for lg in legs)
                basis = abs(pos["premium"])
                front = min(lg["expiration"] for lg in legs)
                pt, sl = dna.profit_target_pct, dna.stop_loss_pct
                if pt is not None and pnl >= pt * basis:
                    pos["reason"] = "profit_target"
                elif sl is not None and -pnl >= sl * basis:
                    pos["reason"] = "stop_loss"
                elif dna.dte_exit is not None and (front - day).days <= dna.dte_exit:
                    pos["reason"] = "dte_exit"
                elif dna.delta_breach is not None and any(
                        lg["qty"] < 0 and abs(lg["delta"]) >= dna.delta_breach for lg in legs):
                    pos["reason"] = "delta_breach"
                elif dna.max_hold_days is not None and (day - pos["entry_date"]).days >= dna.max_hold_days:
                    pos["reason"] = "max_hold_days"
            if pos["reason"] is not None:
                for lg in legs:
                    if lg["open"] and lg["quote"] is not None:
                        price = fill(lg["quote"].bid, lg["quote"].ask, lg["qty"] < 0, shares[n - 1])
                        flow = pos["contracts"] * (lg["qty"] * price * mult - commission)
                        cash += flow
                        pos["cash"] += flow
                        lg.update(open=False, exit_fill=price)
                if not any(lg["open"] for lg in legs):
                    pos["trade"].update(exit_date=day, exit_reason=pos["reason"], pnl=pos["cash"],
                                        quote_gaps=pos["gaps"])
                    open_pos.remove(pos)
        value = sum(p["contracts"] * lg["qty"] * lg["mark"] * mult for p in open_pos for lg in p["legs"] if lg["open"])
        equity = cash + value
        # entry
        allowed = True if mask is None else bool(mask[t])
        if allowed and len(open_pos) < dna.max_positions:
            legs = build(dna, snap, day)
            if legs:
                n = len(legs)
                for lg in legs:
                    lg["fill"] = fill(lg["bid"], lg["ask"], lg["qty"] > 0, shares[n - 1])
                premium = -sum(lg["qty"] * lg["fill"] for lg in legs)
                unit = risk_unit(dna.structure_type, legs, premium, close, costs)
                risk = unit * mult + 2.0 * n * commission
                if premium != 0 and unit > 0 and equity > 0:
                    open_risk = sum(p["risk"] for p in open_pos)
                    contracts = min(math.floor(equity * dna.max_position_pct / risk),
                                    math.floor((equity * dna.max_total_risk_pct - open_risk) / risk))
                    if contracts >= 1:
                        flow = contracts * (premium * mult - n * commission)
                        cash += flow
                        for lg in legs:
                            lg.update(open=True, mark=(lg["bid"] + lg["ask"]) / 2, quote=None)
                        trade = {"entry_date": day, "exit_date": None, "contracts": contracts,
                                 "entry_premium": premium, "risk": contracts * risk, "legs": legs}
                        trades.append(trade)
                        open_pos.append({"legs": legs, "contracts": contracts, "premium": premium,
                                         "risk": contracts * risk, "cash": flow, "entry_t": t,
                                         "entry_date": day, "reason": None, "gaps": 0, "trade": trade})
                        equity = cash + value + sum(contracts * lg["qty"] * lg["mark"] * mult for lg in legs)
        equity_rows.append({"date": day, "equity": equity})
    for pos in open_pos:
        value = sum(pos["contracts"] * lg["qty"] * lg["mark"] * mult for lg in pos["legs"] if lg["open"])
        for lg in pos["legs"]:
            if lg["open"]:
                lg["exit_fill"] = lg["mark"]
        pos["trade"].update(exit_date=days[-1], exit_reason="open_at_end", pnl=pos["cash"] + value,
                            quote_gaps=pos["gaps"])
    return pd.DataFrame(trades), pd.DataFrame(equity_rows)
