"""Numba kernels of the backtest contract (DESIGN §4): pure functions over the ChainIndex arrays.

``run_genomes`` evaluates many genomes in one call (``prange`` over genomes); each genome walks
the days in order: mark open positions, settle expired legs, apply exits, then consider one
entry. The Python API in :mod:`backtest.engine` packs genomes and costs into the flat parameter
vectors whose layout is defined here.

``build_legs``, ``risk_per_unit`` and ``_close_leg`` are inlined into the day loop: a call passes
each array as seven values and reference-counts it, which cost ~10% of the loop (measured, with
no change in compile time); inlining the |delta| search and expiration choice as well ran slower
and compiled 50% longer (BENCHMARKS.md).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# ---- structure type codes (declaration order of backtest.dna.StructureType)
LONG_CALL, LONG_PUT, SHORT_CALL, SHORT_PUT = 0, 1, 2, 3
LONG_STRADDLE, SHORT_STRADDLE, LONG_STRANGLE, SHORT_STRANGLE = 4, 5, 6, 7
CALL_DEBIT_SPREAD, CALL_CREDIT_SPREAD, PUT_DEBIT_SPREAD, PUT_CREDIT_SPREAD = 8, 9, 10, 11
IRON_CONDOR, IRON_BUTTERFLY = 12, 13
CALENDAR_CALL, CALENDAR_PUT, DIAGONAL_CALL, DIAGONAL_PUT = 14, 15, 16, 17

# ---- genome parameter vector layout (NaN / -1 switch an optional exit off)
P_TYPE, P_FRONT_MIN, P_FRONT_MAX, P_BACK_MIN, P_BACK_MAX = 0, 1, 2, 3, 4
P_LONG_DELTA, P_SHORT_DELTA, P_WIDTH = 5, 6, 7
P_PROFIT_TARGET, P_STOP_LOSS, P_DTE_EXIT, P_DELTA_BREACH, P_MAX_HOLD = 8, 9, 10, 11, 12
P_RISK_PCT, P_MAX_POSITIONS, P_MAX_TOTAL_RISK = 13, 14, 15
N_PARAMS = 16

# ---- cost vector layout
C_SLIP1, C_COMMISSION, C_ASSIGNMENT_FEE, C_INITIAL_EQUITY, C_MULTIPLIER = 0, 4, 5, 6, 7
C_MARGIN_INDEX, C_MARGIN_EQUITY, C_MARGIN_FLOOR = 8, 9, 10
N_COSTS = 11

# ---- exit reasons
EXIT_PROFIT_TARGET, EXIT_STOP_LOSS, EXIT_DTE, EXIT_DELTA_BREACH = 1, 2, 3, 4
EXIT_MAX_HOLD, EXIT_EXPIRATION, EXIT_OPEN_AT_END = 5, 6, 7
EXIT_REASONS = {
    EXIT_PROFIT_TARGET: "profit_target", EXIT_STOP_LOSS: "stop_loss", EXIT_DTE: "dte_exit",
    EXIT_DELTA_BREACH: "delta_breach", EXIT_MAX_HOLD: "max_hold_days",
    EXIT_EXPIRATION: "expiration", EXIT_OPEN_AT_END: "open_at_end",
}

MAX_LEGS = 4


# --------------------------------------------------------------------------- selection


@njit(cache=True)
def choose_group(days, day_group_start, group_expiration, d, dte_min, dte_max):
    """The expiration group of day d whose DTE is in [dte_min, dte_max] and closest to the
    window's midpoint; ties go to the earlier (groups are sorted by expiration). -1 if none.

    |DTE - mid| falls up to mid and rises after it, so the closest group is the first group of
    the last expiration below mid or the first group at/above it (binary search)."""
    mid = 0.5 * (dte_min + dte_max)
    first, end = day_group_start[d], day_group_start[d + 1]
    today = days[d]
    lo, hi = first, end
    while lo < hi:  # first group with dte >= mid
        m = (lo + hi) // 2
        if group_expiration[m] - today < mid:
            lo = m + 1
        else:
            hi = m
    best, best_dist = -1, np.inf
    if lo > first:
        expiration = group_expiration[lo - 1]
        dte = expiration - today
        if dte_min <= dte <= dte_max:
            best, best_dist = lo - 1, abs(dte - mid)
            while best > first and group_expiration[best - 1] == expiration:
                best -= 1
    if lo < end:
        dte = group_expiration[lo] - today
        if dte_min <= dte <= dte_max and abs(dte - mid) < best_dist:
            best = lo
    return best


@njit(cache=True)
def segment(group_row_start, group_put_start, g, is_call):
    """Row range [lo, hi) of the calls or puts of group g (strikes ascending)."""
    if is_call:
        return group_row_start[g], group_put_start[g]
    return group_put_start[g], group_row_start[g + 1]


@njit(cache=True)
def _abs_delta(delta, lo, hi, j, is_call):
    """|delta| at position j of a side ordered so that it never decreases when the side is
    monotone: puts by ascending strike, calls by descending strike."""
    return abs(np.float64(delta[hi - 1 - j if is_call else lo + j]))


@njit(cache=True)
def _first_at_least(delta, lo, hi, value, is_call):
    """First position j whose |delta| >= value (binary search on a monotone side; the halving
    step is a conditional move, not a branch the CPU mispredicts half of the time)."""
    n = hi - lo
    if n == 0:
        return 0
    base = 0
    while n > 1:
        half = n // 2
        base = base + half if _abs_delta(delta, lo, hi, base + half, is_call) < value else base
        n -= half
    return base + (1 if _abs_delta(delta, lo, hi, base, is_call) < value else 0)


@njit(cache=True)
def pick_by_delta(delta, lo, hi, target, is_call, monotone):
    """Row whose |delta| is closest to target; ties: higher strike for calls, lower for puts.
    Rows without a delta (NaN distance compares false) are never chosen. -1 if none.

    On a monotone side (|delta| falling with strike for calls, rising for puts, no NaN; flagged
    by the index) the same row is found by binary search: the closest values are the run just
    below the target or the run at/above it, and the tie rule picks the lowest position."""
    n = hi - lo
    if n == 0:
        return -1
    if monotone:
        i = _first_at_least(delta, lo, hi, target, is_call)
        if i == 0:
            j = 0
        else:
            below = _abs_delta(delta, lo, hi, i - 1, is_call)
            if i < n and _abs_delta(delta, lo, hi, i, is_call) - target < target - below:
                j = i
            elif i < 2 or _abs_delta(delta, lo, hi, i - 2, is_call) < below:
                j = i - 1  # the usual case: `below` is not part of a run of equal values
            else:
                j = _first_at_least(delta, lo, hi, below, is_call)
        return hi - 1 - j if is_call else lo + j
    best, best_dist = -1, np.inf
    if is_call:
        for r in range(lo, hi):
            dist = abs(abs(np.float64(delta[r])) - target)
            if dist <= best_dist:
                best, best_dist = r, dist
    else:
        for r in range(lo, hi):
            dist = abs(abs(np.float64(delta[r])) - target)
            if dist < best_dist:
                best, best_dist = r, dist
    return best


@njit(cache=True)
def _monotone(group_monotone, g, is_call):
    return (group_monotone[g] & (1 if is_call else 2)) != 0


@njit(cache=True)
def find_group(day_group_start, group_expiration, group_root, d, expiration, root):
    """Group of day d holding (expiration, root), or -1."""
    lo, hi = day_group_start[d], day_group_start[d + 1]
    while lo < hi:  # first group with expiration >= target
        m = (lo + hi) // 2
        if group_expiration[m] < expiration:
            lo = m + 1
        else:
            hi = m
    g = lo
    while g < day_group_start[d + 1] and group_expiration[g] == expiration:
        if group_root[g] == root:
            return g
        g += 1
    return -1


@njit(cache=True)
def find_strike(strike, lo, hi, k):
    """Row in [lo, hi) with strike exactly k, or -1."""
    end = hi
    while lo < hi:
        m = (lo + hi) // 2
        if strike[m] < k:
            lo = m + 1
        else:
            hi = m
    if lo < end and strike[lo] == k:
        return lo
    return -1


# --------------------------------------------------------------------------- structure building


@njit(cache=True, inline="always")
def build_legs(params, k, d, days, day_group_start, group_expiration, group_row_start, group_put_start,
               group_monotone, strike, delta, leg_row, leg_qty, leg_group):
    """Fill leg_row/leg_qty (long +1, short -1)/leg_group with the legs of genome k (row of
    ``params``) on day d per the leg templates of DESIGN §4. Returns the number of legs, or 0
    when it cannot be fully built."""
    st = int(params[k, P_TYPE])
    width = int(params[k, P_WIDTH])
    g = choose_group(days, day_group_start, group_expiration, d, params[k, P_FRONT_MIN], params[k, P_FRONT_MAX])
    if g < 0:
        return 0
    leg_group[:] = g
    clo, chi = segment(group_row_start, group_put_start, g, True)
    plo, phi = segment(group_row_start, group_put_start, g, False)

    if st <= SHORT_PUT:
        is_call = st == LONG_CALL or st == SHORT_CALL
        is_long = st == LONG_CALL or st == LONG_PUT
        lo, hi = (clo, chi) if is_call else (plo, phi)
        r = pick_by_delta(delta, lo, hi, params[k, P_LONG_DELTA] if is_long else params[k, P_SHORT_DELTA], is_call,
                          _monotone(group_monotone, g, is_call))
        if r < 0:
            return 0
        leg_row[0], leg_qty[0] = r, 1 if is_long else -1
        return 1

    if st == LONG_STRADDLE or st == SHORT_STRADDLE or st == IRON_BUTTERFLY:
        c = pick_by_delta(delta, clo, chi, 0.5, True, _monotone(group_monotone, g, True))
        if c < 0:
            return 0
        p = find_strike(strike, plo, phi, strike[c])
        if p < 0:
            return 0
        q = 1 if st == LONG_STRADDLE else -1
        leg_row[0], leg_qty[0] = c, q
        leg_row[1], leg_qty[1] = p, q
        if st != IRON_BUTTERFLY:
            return 2
        if p - width < plo or c + width >= chi:
            return 0
        leg_row[2], leg_qty[2] = p - width, 1
        leg_row[3], leg_qty[3] = c + width, 1
        return 4

    if st == LONG_STRANGLE or st == SHORT_STRANGLE:
        is_long = st == LONG_STRANGLE
        target = params[k, P_LONG_DELTA] if is_long else params[k, P_SHORT_DELTA]
        c = pick_by_delta(delta, clo, chi, target, True, _monotone(group_monotone, g, True))
        p = pick_by_delta(delta, plo, phi, target, False, _monotone(group_monotone, g, False))
        if c < 0 or p < 0:
            return 0
        q = 1 if is_long else -1
        leg_row[0], leg_qty[0] = c, q
        leg_row[1], leg_qty[1] = p, q
        return 2

    if st <= IRON_CONDOR:  # verticals and the condor: an anchor leg and a wing further OTM
        n = 0
        for side in range(2):
            # side 0: put side, side 1: call side
            if st == IRON_CONDOR:
                is_call = side == 1
            elif side == 0:
                is_call = st == CALL_DEBIT_SPREAD or st == CALL_CREDIT_SPREAD
            else:
                break
            is_debit = st == CALL_DEBIT_SPREAD or st == PUT_DEBIT_SPREAD
            lo, hi = (clo, chi) if is_call else (plo, phi)
            target = params[k, P_LONG_DELTA] if is_debit else params[k, P_SHORT_DELTA]
            a = pick_by_delta(delta, lo, hi, target, is_call, _monotone(group_monotone, g, is_call))
            if a < 0:
                return 0
            w = a + width if is_call else a - width
            if w < lo or w >= hi:
                return 0
            leg_row[n], leg_qty[n] = a, 1 if is_debit else -1
            leg_row[n + 1], leg_qty[n + 1] = w, -1 if is_debit else 1
            n += 2
        return n

    # calendars and diagonals: long back-month leg, short front-month leg
    is_call = st == CALENDAR_CALL or st == DIAGONAL_CALL
    b = choose_group(days, day_group_start, group_expiration, d, params[k, P_BACK_MIN], params[k, P_BACK_MAX])
    if b < 0 or group_expiration[b] <= group_expiration[g]:
        return 0
    blo, bhi = segment(group_row_start, group_put_start, b, is_call)
    flo, fhi = (clo, chi) if is_call else (plo, phi)
    back = pick_by_delta(delta, blo, bhi, params[k, P_LONG_DELTA], is_call, _monotone(group_monotone, b, is_call))
    if back < 0:
        return 0
    if st == CALENDAR_CALL or st == CALENDAR_PUT:
        front = find_strike(strike, flo, fhi, strike[back])
    else:
        front = pick_by_delta(delta, flo, fhi, params[k, P_SHORT_DELTA], is_call,
                              _monotone(group_monotone, g, is_call))
    if front < 0:
        return 0
    leg_row[0], leg_qty[0], leg_group[0] = back, 1, b
    leg_row[1], leg_qty[1] = front, -1
    return 2


@njit(cache=True)
def fill_price(bid, ask, qty, share):
    """Buy (qty > 0) at bid + s x width, sell at ask - s x width; s = 1 crosses the spread."""
    width = np.float64(ask) - np.float64(bid)
    if qty > 0:
        return np.float64(bid) + share * width
    return np.float64(ask) - share * width


@njit(cache=True)
def naked_margin(is_call, premium, k, spot, pct, floor_pct):
    """Reg-T/Cboe margin of one short option per unit of underlying: premium + max(pct x spot -
    out-of-the-money amount, floor x (spot for calls, strike for puts))."""
    otm = max(k - spot, 0.0) if is_call else max(spot - k, 0.0)
    return premium + max(pct * spot - otm, floor_pct * (spot if is_call else k))


@njit(cache=True, inline="always")
def risk_per_unit(st, n, strikes, calls, qtys, fills, entry_cash, spot, european, cst):
    """Capital at risk of one structure in price units: the max loss for defined-risk structures,
    Reg-T margin for naked shorts. <= 0 means it cannot be sized."""
    if st == SHORT_CALL or st == SHORT_PUT or st == SHORT_STRADDLE or st == SHORT_STRANGLE:
        pct = cst[C_MARGIN_INDEX] if european else cst[C_MARGIN_EQUITY]
        m0 = naked_margin(calls[0], fills[0], strikes[0], spot, pct, cst[C_MARGIN_FLOOR])
        if n == 1:
            return m0
        m1 = naked_margin(calls[1], fills[1], strikes[1], spot, pct, cst[C_MARGIN_FLOOR])
        # two naked legs: the larger requirement plus the other leg's premium
        return m0 + fills[1] if m0 >= m1 else m1 + fills[0]
    if st == CALL_CREDIT_SPREAD or st == PUT_CREDIT_SPREAD or st == IRON_CONDOR or st == IRON_BUTTERFLY:
        widest = 0.0
        for i in range(n):
            for j in range(n):
                if qtys[i] < 0 and qtys[j] > 0 and calls[i] == calls[j]:
                    widest = max(widest, abs(np.float64(strikes[i]) - np.float64(strikes[j])))
        return widest - entry_cash
    if st == DIAGONAL_CALL or st == DIAGONAL_PUT:
        # the back leg is legs[0] (long), the front legs[1] (short)
        gap = np.float64(strikes[0]) - np.float64(strikes[1])
        if st == DIAGONAL_PUT:
            gap = -gap
        return -entry_cash + max(gap, 0.0)
    return -entry_cash  # debit structures: the premium paid


# --------------------------------------------------------------------------- the day loop


@njit(cache=True, inline="always")
def _close_leg(q, i, price, day_idx, qty, cost_per_contract, pos_contracts, pos_cash, leg_open,
               leg_exit_price, leg_exit_day, mult):
    """Close leg i of position q at price (per unit); returns the cash it brings."""
    cash = pos_contracts[q] * (qty * price * mult - cost_per_contract)
    pos_cash[q] += cash
    leg_open[q, i] = False
    leg_exit_price[q, i] = price
    leg_exit_day[q, i] = day_idx
    return cash


@njit(cache=True)
def _record_entry_legs(g, k, nl, q, new_k, new_call, new_qty, new_fill, leg_exp, leg_root, lg_strike, lg_exp,
                       lg_root, lg_call, lg_qty, lg_entry, lg_exit, lg_exit_day):
    """Write trade k's legs into the (uninitialised) leg buffers; unused leg columns get zeros."""
    for i in range(MAX_LEGS):
        used = i < nl
        lg_strike[g, k, i] = new_k[i] if used else 0.0
        lg_exp[g, k, i] = leg_exp[q, i] if used else 0
        lg_root[g, k, i] = leg_root[q, i] if used else 0
        lg_call[g, k, i] = new_call[i] if used else False
        lg_qty[g, k, i] = new_qty[i] if used else 0
        lg_entry[g, k, i] = new_fill[i] if used else 0.0
        lg_exit[g, k, i] = 0.0
        lg_exit_day[g, k, i] = 0


@njit(cache=True)
def run_block(g0, g1, params, cst, masks, d0, d1, days, close, day_group_start, group_expiration,
              group_root, group_european, group_row_start, group_put_start, group_monotone, strike, bid,
              ask, delta, next_row, record_legs, equity_out, pnl_out, open_out, tr_entry, tr_exit, tr_contracts,
              tr_reason, tr_pnl, tr_premium, tr_risk, tr_gaps, tr_nlegs, lg_strike, lg_exp, lg_root,
              lg_call, lg_qty, lg_entry, lg_exit, lg_exit_day, n_trades_out, gaps_out):
    """Genomes g0..g1-1 together, day by day: every genome of the block reads a day's rows while
    they are in cache (the kernel is bound by memory latency, not arithmetic).

    Position state is struct-of-arrays over slots q = genome-in-block x max_positions + slot,
    legs [q, leg]. Each day one pass over a genome's slots marks a position's legs, settles and
    exits it and adds it to the day's open value (the order of every floating-point sum is the
    contract's: slots ascending, legs ascending), then at most one entry is tried."""
    B = g1 - g0
    cap_max = 1
    for g in range(g0, g1):
        cap_max = max(cap_max, int(params[g, P_MAX_POSITIONS]))
    Q = B * cap_max
    mult = cst[C_MULTIPLIER]
    commission = cst[C_COMMISSION]
    assignment_fee = cst[C_ASSIGNMENT_FEE]
    # per genome: integer genes converted once
    g_cap = np.empty(B, dtype=np.int64)
    g_dte_exit = np.empty(B, dtype=np.int64)
    g_max_hold = np.empty(B, dtype=np.int64)
    for b in range(B):
        g_cap[b] = int(params[g0 + b, P_MAX_POSITIONS])
        g_dte_exit[b] = int(params[g0 + b, P_DTE_EXIT])
        g_max_hold[b] = int(params[g0 + b, P_MAX_HOLD])
    active = np.zeros(Q, dtype=np.bool_)
    closing = np.zeros(Q, dtype=np.bool_)
    pos_entry = np.zeros(Q, dtype=np.int64)  # window day of the entry
    pos_entry_day = np.zeros(Q, dtype=np.int64)  # calendar day of the entry
    pos_front = np.zeros(Q, dtype=np.int64)  # nearest leg expiration
    pos_contracts = np.zeros(Q, dtype=np.int64)
    pos_nlegs = np.zeros(Q, dtype=np.int64)
    pos_cash = np.zeros(Q)
    pos_premium = np.zeros(Q)
    pos_take = np.zeros(Q)  # profit target and stop loss in P&L per unit (NaN: off)
    pos_stop = np.zeros(Q)
    pos_risk = np.zeros(Q)
    pos_trade = np.zeros(Q, dtype=np.int64)
    pos_gaps = np.zeros(Q, dtype=np.int64)
    pos_reason = np.zeros(Q, dtype=np.int64)
    leg_exp = np.zeros((Q, MAX_LEGS), dtype=np.int64)
    leg_root = np.zeros((Q, MAX_LEGS), dtype=np.int64)
    leg_call = np.zeros((Q, MAX_LEGS), dtype=np.bool_)
    leg_eur = np.zeros((Q, MAX_LEGS), dtype=np.bool_)
    leg_k = np.zeros((Q, MAX_LEGS), dtype=np.float32)
    leg_qty = np.zeros((Q, MAX_LEGS), dtype=np.int64)
    leg_fill = np.zeros((Q, MAX_LEGS))
    leg_mark = np.zeros((Q, MAX_LEGS))
    leg_open = np.zeros((Q, MAX_LEGS), dtype=np.bool_)
    leg_quote_row = np.zeros((Q, MAX_LEGS), dtype=np.int64)  # row of the last day marked; -1: no quote that day
    leg_units = np.zeros((Q, MAX_LEGS))  # contracts x quantity, as the float every value product starts from
    leg_exit_price = np.zeros((Q, MAX_LEGS))
    leg_exit_day = np.zeros((Q, MAX_LEGS), dtype=np.int64)
    delta_today = np.zeros(MAX_LEGS)
    new_rows = np.zeros(MAX_LEGS, dtype=np.int64)
    new_qty = np.zeros(MAX_LEGS, dtype=np.int64)
    new_k = np.zeros(MAX_LEGS, dtype=np.float32)
    new_call = np.zeros(MAX_LEGS, dtype=np.bool_)
    new_fill = np.zeros(MAX_LEGS)
    new_group = np.zeros(MAX_LEGS, dtype=np.int64)
    g_cash = np.full(B, cst[C_INITIAL_EQUITY])
    g_prev_equity = g_cash.copy()
    g_n_trades = np.zeros(B, dtype=np.int64)
    g_n_open = np.zeros(B, dtype=np.int64)
    g_gaps = np.zeros(B, dtype=np.int64)
    for d in range(d0, d1):
        t = d - d0
        today = days[d]
        spot = close[d]
        for b in range(B):
            g = g0 + b
            cap = g_cap[b]
            base = b * cap_max
            breach = params[g, P_DELTA_BREACH]
            dte_exit, max_hold = g_dte_exit[b], g_max_hold[b]
            open_value = 0.0
            open_risk = 0.0
            for q in range(base, base + cap):
                if not active[q]:
                    continue
                nl = pos_nlegs[q]
                # ---- 1. mark open legs at mid (a missing quote keeps the last mark)
                for i in range(nl):
                    if not leg_open[q, i]:
                        continue
                    delta_today[i] = np.nan
                    r = leg_quote_row[q, i]
                    if r >= 0:  # quoted yesterday: follow the link
                        r = next_row[r]
                    else:  # look the contract up again
                        gg = find_group(day_group_start, group_expiration, group_root, d, leg_exp[q, i],
                                        leg_root[q, i])
                        if gg >= 0:
                            lo, hi = segment(group_row_start, group_put_start, gg, leg_call[q, i])
                            r = find_strike(strike, lo, hi, leg_k[q, i])
                    leg_quote_row[q, i] = r
                    if r >= 0:
                        leg_mark[q, i] = 0.5 * (np.float64(bid[r]) + np.float64(ask[r]))
                        delta_today[i] = delta[r]
                    elif leg_exp[q, i] > today:
                        g_gaps[b] += 1
                        pos_gaps[q] += 1

                # ---- 2. settlement, pending exits, exit rules
                # legs at or past expiration settle at intrinsic value against today's close
                if pos_front[q] <= today:
                    for i in range(nl):
                        if leg_open[q, i] and leg_exp[q, i] <= today:
                            k = np.float64(leg_k[q, i])
                            intrinsic = max(spot - k, 0.0) if leg_call[q, i] else max(k - spot, 0.0)
                            fee = assignment_fee if (intrinsic > 0.0 and not leg_eur[q, i]) else 0.0
                            g_cash[b] += _close_leg(q, i, intrinsic, t, leg_qty[q, i], fee, pos_contracts, pos_cash,
                                                    leg_open, leg_exit_price, leg_exit_day, mult)
                            leg_mark[q, i] = intrinsic
                            if not closing[q]:
                                closing[q] = True
                                pos_reason[q] = EXIT_EXPIRATION
                if not closing[q] and t > pos_entry[q]:
                    pnl_unit = 0.0
                    breached = False
                    for i in range(nl):
                        pnl_unit += leg_qty[q, i] * (leg_mark[q, i] - leg_fill[q, i])
                        if leg_qty[q, i] < 0 and abs(delta_today[i]) >= breach:  # NaN compares false
                            breached = True
                    reason = 0
                    if pnl_unit >= pos_take[q]:
                        reason = EXIT_PROFIT_TARGET
                    elif -pnl_unit >= pos_stop[q]:
                        reason = EXIT_STOP_LOSS
                    elif dte_exit >= 0 and pos_front[q] - today <= dte_exit:
                        reason = EXIT_DTE
                    elif breached:
                        reason = EXIT_DELTA_BREACH
                    elif max_hold >= 0 and today - pos_entry_day[q] >= max_hold:
                        reason = EXIT_MAX_HOLD
                    if reason > 0:
                        closing[q] = True
                        pos_reason[q] = reason
                if closing[q]:
                    # close every open leg that has a quote today; the others at their next quote
                    share = cst[C_SLIP1 + nl - 1]
                    still_open = False
                    for i in range(nl):
                        if not leg_open[q, i]:
                            continue
                        r = leg_quote_row[q, i]
                        if r < 0:
                            still_open = True
                            continue
                        price = fill_price(bid[r], ask[r], -leg_qty[q, i], share)
                        g_cash[b] += _close_leg(q, i, price, t, leg_qty[q, i], commission, pos_contracts, pos_cash,
                                                leg_open, leg_exit_price, leg_exit_day, mult)
                    if not still_open:
                        k = pos_trade[q]
                        tr_exit[g, k] = t
                        tr_reason[g, k] = pos_reason[q]
                        tr_pnl[g, k] = pos_cash[q]
                        tr_gaps[g, k] = pos_gaps[q]
                        if record_legs:
                            for i in range(nl):
                                lg_exit[g, k, i] = leg_exit_price[q, i]
                                lg_exit_day[g, k, i] = leg_exit_day[q, i]
                        active[q] = False
                        g_n_open[b] -= 1
                        continue

                # ---- 3. what the position still holds counts in today's equity
                open_risk += pos_risk[q]
                for i in range(nl):
                    if leg_open[q, i]:
                        open_value += leg_units[q, i] * leg_mark[q, i] * mult
            equity = g_cash[b] + open_value

            # ---- 4. one entry
            if g_n_open[b] < cap and masks[g, t]:
                nl = build_legs(params, g, d, days, day_group_start, group_expiration, group_row_start,
                                group_put_start, group_monotone, strike, delta, new_rows, new_qty, new_group)
                if nl > 0:
                    share = cst[C_SLIP1 + nl - 1]
                    entry_cash = 0.0
                    for i in range(nl):
                        r = new_rows[i]
                        new_fill[i] = fill_price(bid[r], ask[r], new_qty[i], share)
                        new_k[i] = strike[r]
                        new_call[i] = r < group_put_start[new_group[i]]
                        entry_cash -= new_qty[i] * new_fill[i]
                    unit = risk_per_unit(int(params[g, P_TYPE]), nl, new_k, new_call, new_qty, new_fill, entry_cash,
                                         spot, group_european[new_group[0]], cst)
                    risk_dollars = unit * mult + 2.0 * nl * commission
                    if entry_cash != 0.0 and unit > 0.0 and equity > 0.0:
                        contracts = math.floor(equity * params[g, P_RISK_PCT] / risk_dollars)
                        room = math.floor((equity * params[g, P_MAX_TOTAL_RISK] - open_risk) / risk_dollars)
                        contracts = min(contracts, room)
                        if contracts >= 1:
                            q = base
                            while active[q]:
                                q += 1
                            active[q] = True
                            closing[q] = False
                            g_n_open[b] += 1
                            k = g_n_trades[b]
                            g_n_trades[b] += 1
                            pos_trade[q] = k
                            pos_entry[q] = t
                            pos_entry_day[q] = today
                            pos_contracts[q] = contracts
                            pos_nlegs[q] = nl
                            pos_premium[q] = entry_cash
                            basis = abs(entry_cash)
                            pos_take[q] = params[g, P_PROFIT_TARGET] * basis
                            pos_stop[q] = params[g, P_STOP_LOSS] * basis
                            pos_risk[q] = contracts * risk_dollars
                            pos_gaps[q] = 0
                            pos_cash[q] = contracts * (entry_cash * mult - nl * commission)
                            g_cash[b] += pos_cash[q]
                            front = group_expiration[new_group[0]]
                            for i in range(nl):
                                r = new_rows[i]
                                gi = new_group[i]
                                front = min(front, group_expiration[gi])
                                leg_exp[q, i] = group_expiration[gi]
                                leg_root[q, i] = group_root[gi]
                                leg_eur[q, i] = group_european[gi]
                                leg_call[q, i] = new_call[i]
                                leg_k[q, i] = new_k[i]
                                leg_qty[q, i] = new_qty[i]
                                leg_fill[q, i] = new_fill[i]
                                leg_mark[q, i] = 0.5 * (np.float64(bid[r]) + np.float64(ask[r]))
                                leg_open[q, i] = True
                                leg_quote_row[q, i] = r
                                leg_units[q, i] = contracts * new_qty[i]
                                open_value += leg_units[q, i] * leg_mark[q, i] * mult
                            pos_front[q] = front
                            equity = g_cash[b] + open_value
                            tr_entry[g, k] = t
                            tr_exit[g, k] = -1
                            tr_contracts[g, k] = contracts
                            tr_premium[g, k] = entry_cash
                            tr_risk[g, k] = contracts * risk_dollars
                            tr_nlegs[g, k] = nl
                            if record_legs:
                                _record_entry_legs(g, k, nl, q, new_k, new_call, new_qty, new_fill, leg_exp, leg_root,
                                                   lg_strike, lg_exp, lg_root, lg_call, lg_qty, lg_entry, lg_exit,
                                                   lg_exit_day)

            equity_out[g, t] = equity
            pnl_out[g, t] = equity - g_prev_equity[b]
            open_out[g, t] = g_n_open[b]
            g_prev_equity[b] = equity

    # positions still open at the end: marked P&L, reason "open_at_end"
    last = d1 - d0 - 1
    for b in range(B):
        g = g0 + b
        for q in range(b * cap_max, (b + 1) * cap_max):
            if active[q]:
                k = pos_trade[q]
                value = 0.0
                for i in range(pos_nlegs[q]):
                    if leg_open[q, i]:
                        value += leg_units[q, i] * leg_mark[q, i] * mult
                        leg_exit_price[q, i] = leg_mark[q, i]
                        leg_exit_day[q, i] = last
                tr_exit[g, k] = last
                tr_reason[g, k] = EXIT_OPEN_AT_END
                tr_pnl[g, k] = pos_cash[q] + value
                tr_gaps[g, k] = pos_gaps[q]
                if record_legs:
                    for i in range(pos_nlegs[q]):
                        lg_exit[g, k, i] = leg_exit_price[q, i]
                        lg_exit_day[g, k, i] = leg_exit_day[q, i]
        n_trades_out[g] = g_n_trades[b]
        gaps_out[g] = g_gaps[b]


@njit(cache=True, parallel=True)
def run_genomes(params, cst, masks, d0, d1, days, close, day_group_start, group_expiration,
                group_root, group_european, group_row_start, group_put_start, group_monotone, strike,
                bid, ask, delta, next_row, record_legs, block):
    """Backtest every genome (row of ``params``) over days [d0, d1) in one call, ``block``
    genomes per task (``prange`` over blocks).

    ``masks[g, t]``: entry filter of genome g on window day t. Trade buffers hold one entry per
    day at most, so ``d1 - d0`` trades per genome always fit. They are left uninitialised
    (zeroing them cost more than the backtest of a genome that never trades): only the first
    ``n_trades[g]`` rows of genome g are written."""
    n_g = params.shape[0]
    n_t = d1 - d0
    cap_legs = n_t if record_legs else 0
    equity = np.empty((n_g, n_t))
    pnl = np.empty((n_g, n_t))
    n_open = np.empty((n_g, n_t), dtype=np.int16)
    tr_entry = np.empty((n_g, n_t), dtype=np.int32)
    tr_exit = np.empty((n_g, n_t), dtype=np.int32)
    tr_contracts = np.empty((n_g, n_t), dtype=np.int64)
    tr_reason = np.empty((n_g, n_t), dtype=np.int8)
    tr_pnl = np.empty((n_g, n_t))
    tr_premium = np.empty((n_g, n_t))
    tr_risk = np.empty((n_g, n_t))
    tr_gaps = np.empty((n_g, n_t), dtype=np.int32)
    tr_nlegs = np.empty((n_g, n_t), dtype=np.int8)
    lg_strike = np.empty((n_g, cap_legs, MAX_LEGS), dtype=np.float32)
    lg_exp = np.empty((n_g, cap_legs, MAX_LEGS), dtype=np.int32)
    lg_root = np.empty((n_g, cap_legs, MAX_LEGS), dtype=np.int16)
    lg_call = np.empty((n_g, cap_legs, MAX_LEGS), dtype=np.bool_)
    lg_qty = np.empty((n_g, cap_legs, MAX_LEGS), dtype=np.int8)
    lg_entry = np.empty((n_g, cap_legs, MAX_LEGS))
    lg_exit = np.empty((n_g, cap_legs, MAX_LEGS))
    lg_exit_day = np.empty((n_g, cap_legs, MAX_LEGS), dtype=np.int32)
    n_trades = np.zeros(n_g, dtype=np.int64)
    gaps = np.zeros(n_g, dtype=np.int64)
    n_blocks = (n_g + block - 1) // block
    for j in prange(n_blocks):
        run_block(j * block, min(n_g, (j + 1) * block), params, cst, masks, d0, d1, days, close, day_group_start,
                group_expiration, group_root, group_european, group_row_start, group_put_start,
                group_monotone, strike, bid, ask, delta, next_row, record_legs, equity, pnl, n_open,
                tr_entry, tr_exit,
                tr_contracts, tr_reason, tr_pnl, tr_premium, tr_risk, tr_gaps, tr_nlegs,
                lg_strike, lg_exp, lg_root, lg_call, lg_qty, lg_entry, lg_exit, lg_exit_day, n_trades,
                gaps)
    return (equity, pnl, n_open, n_trades, gaps, tr_entry, tr_exit, tr_contracts, tr_reason,
            tr_pnl, tr_premium, tr_risk, tr_gaps, tr_nlegs, lg_strike, lg_exp, lg_root, lg_call, lg_qty,
            lg_entry, lg_exit, lg_exit_day)
