"""Numba kernels of dataset validation: static-arbitrage scans along strikes and expirations.

Every kernel walks rows sorted by (underlying, quote_date, root, right, expiration, strike) and
receives group offsets (``starts[g]:starts[g+1]`` are the rows of group g). Inputs may be
read-only; outputs are freshly allocated boolean masks in the same (sorted) row order.
"""
from __future__ import annotations

import numpy as np
from numba import njit

# Absolute slack for comparisons of dollar prices: float noise, never a tick.
PRICE_EPS = 1e-9


@njit(cache=True)
def _tradable_verticals(rows, call, strike, bid, ask, out):
    """Mark every row that is a leg of some vertical (any two strikes, not only adjacent ones)
    with a riskless profit at bid/ask. With i < j in strike order:
    calls: buy i sell j if bid_j > ask_i; sell i buy j if bid_i - ask_j > K_j - K_i;
    puts:  buy j sell i if bid_i > ask_j; sell j buy i if bid_j - ask_i > K_j - K_i.
    A forward pass (extremes over earlier strikes) finds each j, a backward pass (extremes over
    later strikes) each i: O(n) instead of all pairs."""
    m = len(rows)
    # forward: does row j have a partner i < j?
    ext = _no_extremes()
    for a in range(m):
        j = rows[a]
        if call:
            hit = bid[j] > ext[_MIN_ASK] + PRICE_EPS or ext[_MAX_BID_PLUS_K] - (ask[j] + strike[j]) > PRICE_EPS
        else:
            hit = ext[_MAX_BID] > ask[j] + PRICE_EPS or (bid[j] - strike[j]) - ext[_MIN_ASK_MINUS_K] > PRICE_EPS
        out[j] |= hit
        _absorb(ext, bid[j], ask[j], strike[j])
    # backward: does row i have a partner j > i?
    ext = _no_extremes()
    for a in range(m - 1, -1, -1):
        i = rows[a]
        if call:
            hit = ext[_MAX_BID] > ask[i] + PRICE_EPS or (bid[i] + strike[i]) - ext[_MIN_ASK_PLUS_K] > PRICE_EPS
        else:
            hit = bid[i] > ext[_MIN_ASK] + PRICE_EPS or ext[_MAX_BID_MINUS_K] - (ask[i] - strike[i]) > PRICE_EPS
        out[i] |= hit
        _absorb(ext, bid[i], ask[i], strike[i])


# running extremes of the rows seen so far, in _absorb's order
_MIN_ASK, _MAX_BID, _MAX_BID_PLUS_K, _MIN_ASK_MINUS_K, _MIN_ASK_PLUS_K, _MAX_BID_MINUS_K = range(6)


@njit(cache=True, inline="always")
def _no_extremes():
    return np.array([np.inf, -np.inf, -np.inf, np.inf, np.inf, -np.inf])


@njit(cache=True, inline="always")
def _absorb(ext, bid, ask, k):
    ext[_MIN_ASK] = min(ext[_MIN_ASK], ask)
    ext[_MAX_BID] = max(ext[_MAX_BID], bid)
    ext[_MAX_BID_PLUS_K] = max(ext[_MAX_BID_PLUS_K], bid + k)
    ext[_MIN_ASK_MINUS_K] = min(ext[_MIN_ASK_MINUS_K], ask - k)
    ext[_MIN_ASK_PLUS_K] = min(ext[_MIN_ASK_PLUS_K], ask + k)
    ext[_MAX_BID_MINUS_K] = max(ext[_MAX_BID_MINUS_K], bid - k)


@njit(cache=True)
def strike_scan(starts, is_call, strike, bid, ask, eligible, mid_tol):
    """Vertical-spread and butterfly checks per (underlying, quote_date, root, right, expiration).

    Returns four masks: mid_vertical, mid_butterfly (rows in an adjacent pair / triplet whose
    mid prices break monotonicity, the slope bound or convexity by more than ``mid_tol`` of the
    row (quotes rounded to a tick move a mid by half a tick, a spread of two mids by up to one)),
    trade_vertical (rows of any two-strike vertical, see ``_tradable_verticals``) and
    trade_butterfly (rows of an adjacent-strike butterfly) that trade at bid/ask for a riskless
    profit: buy at ask, sell at bid. Only ``eligible`` rows take part.

    Bounds use a discount factor of 1 (rates unknown here): the slope bound is then looser than the
    true one, so a flagged violation is a violation at any non-negative rate. The bounds also hold
    for American options (an early-exercised short leg is covered by exercising the long one).
    """
    n = len(strike)
    mid_v = np.zeros(n, np.bool_)
    mid_b = np.zeros(n, np.bool_)
    trade_v = np.zeros(n, np.bool_)
    trade_b = np.zeros(n, np.bool_)
    rows = np.empty(n, np.int64)
    for g in range(len(starts) - 1):
        m = 0
        for i in range(starts[g], starts[g + 1]):
            if eligible[i]:
                rows[m] = i
                m += 1
        if m < 2:
            continue
        call = is_call[rows[0]]
        _tradable_verticals(rows[:m], call, strike, bid, ask, trade_v)
        for a in range(1, m):
            j = rows[a]
            i = rows[a - 1]
            mi = 0.5 * (bid[i] + ask[i])
            mj = 0.5 * (bid[j] + ask[j])
            width = strike[j] - strike[i]
            if call:
                mono = mj - mi  # call prices must not rise with strike
                slope = mi - mj - width
            else:
                mono = mi - mj  # put prices must not fall with strike
                slope = mj - mi - width
            if mono > mid_tol[j] or slope > mid_tol[j]:
                mid_v[i] = True
                mid_v[j] = True
        for a in range(1, m - 1):
            lo = rows[a - 1]
            mid = rows[a]
            hi = rows[a + 1]
            span = strike[hi] - strike[lo]
            w_lo = (strike[hi] - strike[mid]) / span
            w_hi = (strike[mid] - strike[lo]) / span
            fly_mid = (w_lo * (bid[lo] + ask[lo]) + w_hi * (bid[hi] + ask[hi]) - (bid[mid] + ask[mid])) * 0.5
            if fly_mid < -mid_tol[mid]:
                mid_b[lo] = True
                mid_b[mid] = True
                mid_b[hi] = True
            # buy the wings at the ask, sell the body at the bid: a credit on a payoff >= 0
            if w_lo * ask[lo] + w_hi * ask[hi] - bid[mid] < -PRICE_EPS:
                trade_b[lo] = True
                trade_b[mid] = True
                trade_b[hi] = True
    return mid_v, mid_b, trade_v, trade_b


@njit(cache=True)
def calendar_scan(starts, expiration, strike, total_variance, rel_tol):
    """Calendar check in total variance per (underlying, quote_date, root, right).

    ``total_variance`` is iv^2 * T for rows that take part and NaN for the others. Each row of an
    expiration is compared with the next later expiration at the same strike (linear
    interpolation between its listed strikes; the same day's spot makes equal strike equal
    moneyness); w must not fall with T. Returns the mask of the earlier-expiration rows whose total
    variance exceeds the later expiration's.
    """
    n = len(strike)
    bad = np.zeros(n, np.bool_)
    # compacted rows of the group with a usable total variance, and their expiration blocks
    rows = np.empty(n, np.int64)
    ks = np.empty(n, np.float64)
    ws = np.empty(n, np.float64)
    for g in range(len(starts) - 1):
        m = 0
        for i in range(starts[g], starts[g + 1]):
            if not np.isnan(total_variance[i]):
                rows[m] = i
                ks[m] = strike[i]
                ws[m] = total_variance[i]
                m += 1
        a = 0
        while a < m:
            b = a
            while b < m and expiration[rows[b]] == expiration[rows[a]]:
                b += 1
            if b == m:
                break
            c = b
            while c < m and expiration[rows[c]] == expiration[rows[b]]:
                c += 1
            # [a, b) is one expiration, [b, c) the next later one; both ascending in strike, so
            # one pointer p walks the later block for the linear interpolation in strike
            p = b
            for r in range(a, b):
                k = ks[r]
                if k < ks[b] or k > ks[c - 1]:
                    continue
                while ks[p] < k:
                    p += 1
                if ks[p] == k:
                    w_next = ws[p]
                else:
                    x = (k - ks[p - 1]) / (ks[p] - ks[p - 1])
                    w_next = ws[p - 1] + x * (ws[p] - ws[p - 1])
                if ws[r] > w_next * (1.0 + rel_tol):
                    bad[rows[r]] = True
            a = b
    return bad


@njit(cache=True)
def strike_grid(starts, milli, ok, steps, min_strikes, outlier_share):
    """Off-grid strikes per block (one trading class on one day); ``milli`` are strikes in
    thousandths of a dollar. The block's grid is the largest of ``steps`` (descending) on which
    all but max(1, outlier_share x n) of its n distinct strikes fall at one common offset; blocks
    with fewer than ``min_strikes`` distinct strikes are not judged."""
    n = len(milli)
    bad = np.zeros(n, np.bool_)
    for g in range(len(starts) - 1):
        lo = starts[g]
        hi = starts[g + 1]
        values = np.empty(hi - lo, np.int64)
        m = 0
        for i in range(lo, hi):
            if ok[i]:
                values[m] = milli[i]
                m += 1
        if m == 0:
            continue
        values = np.unique(values[:m])
        k = len(values)
        if k < min_strikes:
            continue
        allowed = max(1, int(outlier_share * k))
        for step in steps:
            residues = np.sort(values % step)
            best = residues[0]
            best_count = 0
            run = 0
            for a in range(k):
                run = run + 1 if a > 0 and residues[a] == residues[a - 1] else 1
                if run > best_count:
                    best_count = run
                    best = residues[a]
            if k - best_count <= allowed:
                for i in range(lo, hi):
                    if ok[i] and milli[i] % step != best:
                        bad[i] = True
                break
    return bad


@njit(cache=True)
def quote_ticks(starts, bid, ask, eligible, ticks, min_share):
    """Per block (one underlying on one day), the largest of ``ticks`` (descending) that at
    least ``min_share`` of the positive bids and asks are whole multiples of; 0 when none is."""
    out = np.zeros(len(starts) - 1)
    for g in range(len(starts) - 1):
        for tick in ticks:
            quoted = 0
            on_tick = 0
            for i in range(starts[g], starts[g + 1]):
                if not eligible[i]:
                    continue
                for price in (bid[i], ask[i]):
                    if price > 0:
                        quoted += 1
                        x = price / tick
                        if abs(x - np.rint(x)) < 1e-6:
                            on_tick += 1
            if quoted > 0 and on_tick >= min_share * quoted:
                out[g] = tick
                break
    return out


@njit(cache=True)
def parity_spots(day_starts, root, is_call, expiration, strike, mid, quoted):
    """Spot implied by put-call parity per day block: in the nearest expiration (on or after the
    day) with a quoted call and put at one strike, the pair with the closest mids gives
    K + C - P; NaN where no pair exists. Rows are sorted (root, right, expiration, strike)
    inside a day, puts before calls, so each root's two sides merge in one pass."""
    out = np.full(len(day_starts) - 1, np.nan)
    for d in range(len(day_starts) - 1):
        best_exp = np.iinfo(np.int64).max
        best_gap = np.inf
        r0 = day_starts[d]
        end = day_starts[d + 1]
        while r0 < end:
            r1 = r0
            while r1 < end and root[r1] == root[r0]:
                r1 += 1
            c = r0  # first call of this root
            while c < r1 and not is_call[c]:
                c += 1
            p = r0
            while p < c and c < r1:
                if not quoted[p]:
                    p += 1
                    continue
                if not quoted[c]:
                    c += 1
                    continue
                if expiration[p] < expiration[c] or (expiration[p] == expiration[c] and strike[p] < strike[c]):
                    p += 1
                elif expiration[c] < expiration[p] or strike[c] < strike[p]:
                    c += 1
                else:
                    gap = abs(mid[c] - mid[p])
                    if expiration[c] < best_exp or (expiration[c] == best_exp and gap < best_gap):
                        best_exp = expiration[c]
                        best_gap = gap
                        out[d] = strike[c] + mid[c] - mid[p]
                    p += 1
                    c += 1
            r0 = r1
    return out


@njit(cache=True)
def tradable_calendars(rows, same_series, expiration, bid, ask):
    """Mark rows of a calendar spread of American options that trades for a riskless profit:
    ``rows`` are sorted by (series, expiration), a series being one strike of one (underlying,
    quote_date, root, right); ``same_series[a]`` says rows[a] continues rows[a-1]'s series. A
    later-expiring American option is worth at least as much as an earlier one, so selling the
    earlier at its bid above the later's ask is an arbitrage (exercise the long leg if assigned)."""
    out = np.zeros(len(bid), np.bool_)
    m = len(rows)
    a = 0
    while a < m:
        b = a + 1
        while b < m and same_series[b]:
            b += 1
        max_bid = -np.inf  # over earlier expirations
        for s in range(a, b):
            r = rows[s]
            if max_bid > ask[r] + PRICE_EPS:
                out[r] = True
            max_bid = max(max_bid, bid[r])
        min_ask = np.inf  # over later expirations
        for s in range(b - 1, a - 1, -1):
            r = rows[s]
            if bid[r] > min_ask + PRICE_EPS:
                out[r] = True
            min_ask = min(min_ask, ask[r])
        a = b
    return out
