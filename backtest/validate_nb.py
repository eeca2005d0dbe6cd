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
def strike_scan(starts, is_call, strike, bid, ask, eligible, mid_tol):
    """Vertical-spread and butterfly checks per (underlying, quote_date, root, right, expiration).

    Returns four masks: mid_vertical, mid_butterfly (rows in an adjacent pair / triplet whose
    mid prices break monotonicity, the slope bound or convexity by more than ``mid_tol`` of the
    row (per row: quotes rounded to a tick move a mid by half a tick, a spread of two mids by up
    to one)) and
    trade_vertical, trade_butterfly (rows of a spread that can be traded at bid/ask for a riskless
    profit: buy at ask, sell at bid). Only ``eligible`` rows take part.

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
        # tradable verticals against the best earlier strike: a running extreme catches
        # non-adjacent pairs too, in one pass
        best_mono = rows[0]  # calls: lowest ask so far; puts: highest bid so far
        best_slope = rows[0]  # calls: highest bid + K; puts: lowest ask - K
        for a in range(1, m):
            j = rows[a]
            i = rows[a - 1]
            mi = 0.5 * (bid[i] + ask[i])
            mj = 0.5 * (bid[j] + ask[j])
            width = strike[j] - strike[i]
            if call:
                mono = mj - mi  # call prices must not rise with strike
                slope = mi - mj - width
                if bid[j] > ask[best_mono] + PRICE_EPS:
                    trade_v[j] = True
                    trade_v[best_mono] = True
                if bid[best_slope] - ask[j] > strike[j] - strike[best_slope] + PRICE_EPS:
                    trade_v[j] = True
                    trade_v[best_slope] = True
                if ask[j] < ask[best_mono]:
                    best_mono = j
                if bid[j] + strike[j] > bid[best_slope] + strike[best_slope]:
                    best_slope = j
            else:
                mono = mi - mj  # put prices must not fall with strike
                slope = mj - mi - width
                if bid[best_mono] > ask[j] + PRICE_EPS:
                    trade_v[j] = True
                    trade_v[best_mono] = True
                if bid[j] - ask[best_slope] > strike[j] - strike[best_slope] + PRICE_EPS:
                    trade_v[j] = True
                    trade_v[best_slope] = True
                if bid[j] > bid[best_mono]:
                    best_mono = j
                if ask[j] - strike[j] < ask[best_slope] - strike[best_slope]:
                    best_slope = j
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
