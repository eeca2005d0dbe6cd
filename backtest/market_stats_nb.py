"""Numba kernels of :mod:`backtest.market_stats` over chain rows sorted by (quote_date,
expiration, right, strike): per-expiration surface points and static-arbitrage flags."""
from __future__ import annotations

import math

import numpy as np
from numba import njit

YEAR_DAYS = 365.0


@njit(cache=True, inline="always")
def _calls_end(is_call, s, e):
    m = s
    while m < e and is_call[m]:
        m += 1
    return m


@njit(cache=True)
def implied_forward(strike, is_call, mid, s, m, e, spot):
    """Forward from put-call parity at the strike where call and put mids are closest
    (F ~ K + C - P, ignoring discounting of the small difference); spot when no pair."""
    best = np.inf
    fwd = spot
    i, j = s, m
    while i < m and j < e:
        if strike[i] == strike[j]:
            if np.isfinite(mid[i]) and np.isfinite(mid[j]):
                diff = mid[i] - mid[j]
                if abs(diff) < best:
                    best = abs(diff)
                    fwd = strike[i] + diff
            i += 1
            j += 1
        elif strike[i] < strike[j]:
            i += 1
        else:
            j += 1
    return fwd


@njit(cache=True, inline="always")
def _interp(x, x0, y0, x1, y1):
    if x1 == x0:
        return 0.5 * (y0 + y1)
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


@njit(cache=True)
def expiry_points(starts, ends, quote_date, expiration, strike, is_call, mid, iv, delta, spot, target_delta):
    """Per (day, expiration) group: T (years), implied forward, ATM total variance (IV of the
    out-of-the-money curve interpolated at the forward, squared times T) and the IVs of the
    puts and calls at |delta| = target_delta (linear interpolation; NaN when not bracketed)."""
    n = starts.shape[0]
    t_out = np.empty(n)
    fwd_out = np.empty(n)
    w_atm = np.full(n, np.nan)
    put_iv = np.full(n, np.nan)
    call_iv = np.full(n, np.nan)
    for g in range(n):
        s, e = starts[g], ends[g]
        t = (expiration[s] - quote_date[s]) / YEAR_DAYS
        m = _calls_end(is_call, s, e)
        fwd = implied_forward(strike, is_call, mid, s, m, e, spot[s])
        t_out[g] = t
        fwd_out[g] = fwd
        if t <= 0.0:
            continue
        # ATM: highest OTM put strike below F and lowest OTM call strike at or above F
        lo_k, lo_iv, hi_k, hi_iv = np.nan, np.nan, np.nan, np.nan
        for i in range(m, e):
            if strike[i] < fwd and np.isfinite(iv[i]) and iv[i] > 0:
                lo_k, lo_iv = math.log(strike[i] / fwd), iv[i]
        for i in range(m - 1, s - 1, -1):
            if strike[i] >= fwd and np.isfinite(iv[i]) and iv[i] > 0:
                hi_k, hi_iv = math.log(strike[i] / fwd), iv[i]
        if np.isfinite(lo_iv) and np.isfinite(hi_iv):
            atm = _interp(0.0, lo_k, lo_iv, hi_k, hi_iv)
            w_atm[g] = atm * atm * t
        # puts: |delta| rises with strike; calls: delta falls with strike
        for i in range(m, e - 1):
            a, b = -delta[i], -delta[i + 1]
            if np.isfinite(a) and np.isfinite(b) and np.isfinite(iv[i]) and np.isfinite(iv[i + 1]) \
                    and a <= target_delta <= b:
                put_iv[g] = _interp(target_delta, a, iv[i], b, iv[i + 1])
                break
        for i in range(s, m - 1):
            a, b = delta[i], delta[i + 1]
            if np.isfinite(a) and np.isfinite(b) and np.isfinite(iv[i]) and np.isfinite(iv[i + 1]) \
                    and a >= target_delta >= b:
                call_iv[g] = _interp(target_delta, a, iv[i], b, iv[i + 1])
                break
    return t_out, fwd_out, w_atm, put_iv, call_iv


@njit(cache=True)
def term_interpolate(day_starts, day_ends, t, w, target):
    """Per day: implied vol at maturity `target` (years), linear in total variance between the
    bracketing expirations (NaN when the day's expirations do not bracket it)."""
    out = np.full(day_starts.shape[0], np.nan)
    for d in range(day_starts.shape[0]):
        lo_t, lo_w, hi_t, hi_w = -1.0, np.nan, np.inf, np.nan
        for g in range(day_starts[d], day_ends[d]):
            if not np.isfinite(w[g]) or t[g] <= 0.0:
                continue
            if t[g] <= target and t[g] > lo_t:
                lo_t, lo_w = t[g], w[g]
            if t[g] >= target and t[g] < hi_t:
                hi_t, hi_w = t[g], w[g]
        if np.isfinite(lo_w) and np.isfinite(hi_w):
            out[d] = math.sqrt(max(_interp(target, lo_t, lo_w, hi_t, hi_w), 0.0) / target)
    return out


@njit(cache=True)
def strike_arbitrage(starts, ends, strike, is_call, mid, tol):
    """Vertical and butterfly violations at mid within each expiration and right.

    Vertical: call mids must not rise, put mids not fall, with strike, and a neighbour's
    difference may not exceed the strike gap. Butterfly: mids convex in strike. A violation
    is counted when it exceeds `tol` (dollars). Returns (vertical flags, butterfly flags) per
    row, a flag on the row where the offending spread starts (vertical) or its body (butterfly)."""
    n = strike.shape[0]
    vertical = np.zeros(n, np.bool_)
    butterfly = np.zeros(n, np.bool_)
    for g in range(starts.shape[0]):
        s, e = starts[g], ends[g]
        m = _calls_end(is_call, s, e)
        for lo, hi, sign in ((s, m, 1.0), (m, e, -1.0)):
            prev = -1
            prev2 = -1
            for i in range(lo, hi):
                if not np.isfinite(mid[i]):
                    continue
                if prev >= 0:
                    gap = strike[i] - strike[prev]
                    drop = sign * (mid[prev] - mid[i])  # call spread value (or put spread)
                    if drop < -tol or drop > gap + tol:
                        vertical[prev] = True
                    if prev2 >= 0:
                        k1, k2, k3 = strike[prev2], strike[prev], strike[i]
                        lam = (k3 - k2) / (k3 - k1)
                        if lam * mid[prev2] + (1.0 - lam) * mid[i] - mid[prev] < -tol:
                            butterfly[prev] = True
                prev2 = prev
                prev = i
    return vertical, butterfly


@njit(cache=True)
def calendar_arbitrage(day_starts, day_ends, starts, ends, t, fwd, strike, is_call, iv, rel_tol):
    """Calendar violations in total variance: for consecutive expirations of a day, an
    out-of-the-money row of the nearer one whose total variance iv^2 T exceeds, by more than
    rel_tol (relative), the farther expiration's total variance at the same forward moneyness
    ln(K/F) (linear interpolation, no extrapolation). Returns one flag per row."""
    flags = np.zeros(strike.shape[0], np.bool_)
    for d in range(day_starts.shape[0]):
        for g in range(day_starts[d], day_ends[d] - 1):
            g2 = g + 1
            if t[g] <= 0.0 or t[g2] <= t[g]:
                continue
            s2, e2 = starts[g2], ends[g2]
            m2 = _calls_end(is_call, s2, e2)
            # the farther expiry's OTM curve, ascending in strike: puts below F, calls at/above
            ks = np.empty(e2 - s2)
            ws = np.empty(e2 - s2)
            n2 = 0
            for i in range(m2, e2):
                if strike[i] < fwd[g2] and np.isfinite(iv[i]) and iv[i] > 0:
                    ks[n2] = math.log(strike[i] / fwd[g2])
                    ws[n2] = iv[i] * iv[i] * t[g2]
                    n2 += 1
            for i in range(s2, m2):
                if strike[i] >= fwd[g2] and np.isfinite(iv[i]) and iv[i] > 0:
                    ks[n2] = math.log(strike[i] / fwd[g2])
                    ws[n2] = iv[i] * iv[i] * t[g2]
                    n2 += 1
            if n2 < 2:
                continue
            s, e = starts[g], ends[g]
            for i in range(s, e):
                otm = (strike[i] >= fwd[g]) if is_call[i] else (strike[i] < fwd[g])
                if not otm or not np.isfinite(iv[i]) or iv[i] <= 0:
                    continue
                k = math.log(strike[i] / fwd[g])
                if k < ks[0] or k > ks[n2 - 1]:
                    continue
                j = np.searchsorted(ks[:n2], k)
                j = min(max(j, 1), n2 - 1)
                w2 = _interp(k, ks[j - 1], ws[j - 1], ks[j], ws[j])
                if iv[i] * iv[i] * t[g] > w2 * (1.0 + rel_tol):
                    flags[i] = True
    return flags
