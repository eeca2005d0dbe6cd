"""Numba kernels of dataset validation: static-arbitrage scans along strikes and expirations.

Every kernel walks rows sorted by (underlying, quote_date, root, expiration, right, strike) and
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
    """Vertical-spread and butterfly checks per (underlying, quote_date, root, expiration, right).

    Returns four masks: mid_vertical, mid_butterfly (rows in an adjacent pair / triplet whose
    mid prices break monotonicity, the slope bound or convexity by more than the largest
    ``mid_tol`` of their rows (quotes rounded to a tick move a mid by half a tick, a spread of
    two mids by up to one)),
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
            tol = max(mid_tol[i], mid_tol[j])
            if mono > tol or slope > tol:
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
            if fly_mid < -max(mid_tol[lo], mid_tol[mid], mid_tol[hi]):
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
def _calendar_pair(front_lo, front_hi, back_lo, back_hi, strike, w, rel_tol, bad):
    """Flag front-block rows whose total variance exceeds the back block's at the same strike
    (linear interpolation between the back block's usable strikes; none outside their range).
    Both blocks ascend in strike, so one pointer walks the back block."""
    below = -1  # the last usable back row with a strike below k
    p = back_lo
    for r in range(front_lo, front_hi):
        if np.isnan(w[r]):
            continue
        k = strike[r]
        while p < back_hi and (np.isnan(w[p]) or strike[p] < k):
            if not np.isnan(w[p]):
                below = p
            p += 1
        if p == back_hi:
            return
        if strike[p] == k:
            w_back = w[p]
        elif below < 0:
            continue
        else:
            x = (k - strike[below]) / (strike[p] - strike[below])
            w_back = w[below] + x * (w[p] - w[below])
        if w[r] > w_back * (1.0 + rel_tol):
            bad[r] = True


@njit(cache=True)
def calendar_scan(starts, expiration, right, strike, total_variance, rel_tol):
    """Calendar check in total variance per (underlying, quote_date, root) block, whose rows are
    sorted by (expiration, right, strike).

    ``total_variance`` is iv^2 * T for rows that take part and NaN for the others. Each row is
    compared with the next later expiration of the same right that has usable rows, at the same
    strike (the same day's spot makes equal strike equal moneyness); w must not fall with T.
    Returns the mask of the earlier-expiration rows whose total variance exceeds the later one's.
    """
    bad = np.zeros(len(strike), np.bool_)
    prev_lo = np.empty(2, np.int64)  # per right (0 put, 1 call): last block with usable rows
    prev_hi = np.empty(2, np.int64)
    for g in range(len(starts) - 1):
        prev_lo[:] = -1
        lo = starts[g]
        end = starts[g + 1]
        while lo < end:
            hi = lo
            usable = False
            while hi < end and expiration[hi] == expiration[lo] and right[hi] == right[lo]:
                usable |= not np.isnan(total_variance[hi])
                hi += 1
            side = right[lo]
            if usable and side >= 0:
                if prev_lo[side] >= 0:
                    _calendar_pair(prev_lo[side], prev_hi[side], lo, hi, strike, total_variance, rel_tol, bad)
                prev_lo[side] = lo
                prev_hi[side] = hi
            lo = hi
    return bad


_MAX_MERGED_RUNS = 256  # beyond this many ascending runs in a block, distinct strikes come from a sort


@njit(cache=True)
def _distinct(milli, ok, lo, hi, merged, spare):
    """The distinct values of milli[lo:hi] where ok, ascending. The rows of a block come in
    ascending runs (one per expiration and right, as validation sorts them): they are merged
    run by run, a few times cheaper than sorting the block; with many runs, a sort."""
    m = 0  # merged[:m]: the distinct values of the runs so far
    runs = 0
    i = lo
    while i < hi:
        if not ok[i]:
            i += 1
            continue
        j = i + 1  # the run: ok rows from i whose values ascend
        last = milli[i]
        while j < hi and (not ok[j] or milli[j] > last):
            if ok[j]:
                last = milli[j]
            j += 1
        runs += 1
        if runs > _MAX_MERGED_RUNS:
            values = np.empty(hi - lo, np.int64)
            c = 0
            for r in range(lo, hi):
                if ok[r]:
                    values[c] = milli[r]
                    c += 1
            return np.unique(values[:c])
        a = 0
        c = 0
        for r in range(i, j):
            if not ok[r]:
                continue
            v = milli[r]
            while a < m and merged[a] < v:
                spare[c] = merged[a]
                c += 1
                a += 1
            if a < m and merged[a] == v:
                a += 1
            spare[c] = v
            c += 1
        while a < m:
            spare[c] = merged[a]
            c += 1
            a += 1
        merged, spare = spare, merged
        m = c
        i = j
    return merged[:m].copy()


@njit(cache=True)
def strike_grid(starts, milli, ok, steps, min_strikes, outlier_share):
    """Off-grid strikes per block (one trading class on one day); ``milli`` are strikes in
    thousandths of a dollar. The block's grid is the largest of ``steps`` (descending) on which
    all but max(1, outlier_share x n) of its n distinct strikes fall at one common offset; blocks
    with fewer than ``min_strikes`` distinct strikes are not judged."""
    n = len(milli)
    bad = np.zeros(n, np.bool_)
    merged = np.empty(n, np.int64)
    spare = np.empty(n, np.int64)
    for g in range(len(starts) - 1):
        lo = starts[g]
        hi = starts[g + 1]
        values = _distinct(milli, ok, lo, hi, merged, spare)
        k = len(values)
        if k == 0 or k < min_strikes:
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
def repeated_keys(ok, underlying, quote_date, root, expiration, right, strike):
    """Rows (among ``ok`` ones, in sorted order) whose key equals the previous ok row's: in the
    sort order equal keys are neighbours in input order, so the first of each run is not marked."""
    out = np.zeros(len(ok), np.bool_)
    previous = -1
    for i in range(len(ok)):
        if not ok[i]:
            continue
        if previous >= 0 and (underlying[i] == underlying[previous] and quote_date[i] == quote_date[previous]
                              and root[i] == root[previous] and expiration[i] == expiration[previous]
                              and right[i] == right[previous] and strike[i] == strike[previous]):
            out[i] = True
        previous = i
    return out


@njit(cache=True)
def first_row_reasons(strike, bid, ask, last, underlying_price, right, style_ok, expiration, quote_date, codes):
    """Per row, the first of five reason codes that applies, 0 where none does: codes[0] strike,
    bid, ask or underlying price not finite; [1] right < 0 (invalid) or not style_ok; [2] bid,
    ask or last below 0 or strike or underlying price not above it (NaN compares false);
    [3] bid above ask; [4] expiration before the quote date."""
    out = np.zeros(len(strike), np.int8)
    for i in range(len(strike)):
        if not (np.isfinite(strike[i]) and np.isfinite(bid[i]) and np.isfinite(ask[i])
                and np.isfinite(underlying_price[i])):
            out[i] = codes[0]
        elif right[i] < 0 or not style_ok[i]:
            out[i] = codes[1]
        elif bid[i] < 0 or ask[i] < 0 or last[i] < 0 or strike[i] <= 0 or underlying_price[i] <= 0:
            out[i] = codes[2]
        elif bid[i] > ask[i]:
            out[i] = codes[3]
        elif expiration[i] < quote_date[i]:
            out[i] = codes[4]
    return out


@njit(cache=True)
def otm_total_variances(is_call, strike, underlying_price, bid, iv, expiration, quote_date, eligible, max_iv):
    """Per row, the total variance iv**2 * T (T = calendar days / 365) of eligible out-of-the-money
    rows with a bid, T > 0 and 0 < iv < max_iv; NaN for the others."""
    out = np.full(len(strike), np.nan)
    for i in range(len(strike)):
        t = (expiration[i] - quote_date[i]) / 365.0
        otm = strike[i] >= underlying_price[i] if is_call[i] else strike[i] <= underlying_price[i]
        if eligible[i] and otm and bid[i] > 0 and t > 0 and iv[i] > 0 and iv[i] < max_iv:
            out[i] = iv[i] ** 2 * t
    return out


@njit(cache=True)
def quote_ticks(starts, bid, ask, eligible, ticks, min_share, band_edge):
    """Per row, the quote tick of its block (one underlying on one day) and price band (below /
    from ``band_edge`` dollars, as in the $0.05 / $0.10 SPX and $0.01 / $0.05 penny-pilot rules):
    the largest of ``ticks`` (descending) that at least ``min_share`` of the band's positive bids
    and asks are whole multiples of; 0 when none is. A row whose bid and ask lie in different
    bands takes the larger of the two ticks."""
    out = np.zeros(len(bid))
    block_ticks = np.zeros(2)
    on_tick = np.zeros((2, len(ticks)), np.int64)
    quoted = np.zeros(2, np.int64)
    for g in range(len(starts) - 1):
        on_tick[:] = 0
        quoted[:] = 0
        for i in range(starts[g], starts[g + 1]):
            if not eligible[i]:
                continue
            for price in (bid[i], ask[i]):
                if price > 0:
                    band = 1 if price >= band_edge else 0
                    quoted[band] += 1
                    for t in range(len(ticks)):
                        x = price / ticks[t]
                        if abs(x - np.rint(x)) < 1e-6:
                            on_tick[band, t] += 1
        block_ticks[:] = 0.0
        for band in range(2):
            for t in range(len(ticks)):
                if quoted[band] > 0 and on_tick[band, t] >= min_share * quoted[band]:
                    block_ticks[band] = ticks[t]
                    break
        for i in range(starts[g], starts[g + 1]):
            out[i] = max(block_ticks[1 if bid[i] >= band_edge else 0], block_ticks[1 if ask[i] >= band_edge else 0])
    return out


@njit(cache=True)
def parity_spots(day_starts, root, expiration, is_call, strike, mid, quoted):
    """Spot implied by put-call parity per day block: in the nearest expiration with a quoted call
    and put at one strike, the pair with the closest mids gives K + C - P; NaN where no pair
    exists. Inside a day, rows are sorted (root, expiration, right, strike): each (root,
    expiration) block holds its puts then its calls, merged by strike in one pass."""
    out = np.full(len(day_starts) - 1, np.nan)
    for d in range(len(day_starts) - 1):
        best_exp = np.iinfo(np.int64).max
        best_gap = np.inf
        i = day_starts[d]
        end = day_starts[d + 1]
        while i < end:
            j = i
            while j < end and root[j] == root[i] and expiration[j] == expiration[i]:
                j += 1
            if expiration[i] <= best_exp:
                puts_end = i
                while puts_end < j and not is_call[puts_end]:
                    puts_end += 1
                p = i
                c = puts_end
                while p < puts_end and c < j:
                    if not quoted[p] or strike[p] < strike[c]:
                        p += 1
                    elif not quoted[c] or strike[c] < strike[p]:
                        c += 1
                    else:
                        gap = abs(mid[c] - mid[p])
                        if expiration[i] < best_exp or gap < best_gap:
                            best_exp = expiration[i]
                            best_gap = gap
                            out[d] = strike[c] + mid[c] - mid[p]
                        p += 1
                        c += 1
            i = j
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
