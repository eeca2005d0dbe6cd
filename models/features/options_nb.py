"""Numba kernels: per-day aggregates of one underlying's option chain.

Input is a ChainArrays' columns (sorted by quote_date, expiration, right, strike) and the row
offsets of each day; output is one row of raw aggregates per day (columns ``RAW_COLUMNS``).
Every aggregate of day t reads only that day's rows, so the kernel cannot look ahead; the
history-dependent features (ranks, z-scores, changes) are computed from these rows afterwards.

Conventions: gamma exposure (GEX) of a row is +/- gamma * open_interest * 100 * spot^2 * 0.01,
i.e. the dollar change of the dealers' delta for a 1% move, calls counted positive and puts
negative (the usual "dealers long calls, short puts" convention). Implied volatilities are
interpolated linearly in strike (ATM) or in delta (25-delta), and across expirations linearly in
total variance iv^2 * T, flat beyond the first and last expiration. Greeks or IVs that are NaN
and open interest or volume that are null (-1) are skipped; a quantity with no valid rows is NaN.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

YEAR_DAYS = 365.0
CONTRACT_MULTIPLIER = 100.0

RAW_COLUMNS = (
    "spot",
    "call_oi",
    "put_oi",
    "call_volume",
    "put_volume",
    "net_delta",
    "net_gamma",
    "net_vega",
    "net_theta",
    "gex_total",
    "max_gamma_strike",
    "gamma_concentration",
    "gamma_flip_strike",
    "atm_iv_30d",
    "atm_call_iv_30d",
    "atm_put_iv_30d",
    "call25_iv_30d",
    "put25_iv_30d",
    "atm_iv_90d",
    "front_month_oi",
    "next_month_oi",
    "atm_iv_front",
    "atm_iv_next",
)
N_RAW = len(RAW_COLUMNS)
(SPOT, CALL_OI, PUT_OI, CALL_VOL, PUT_VOL, NET_DELTA, NET_GAMMA, NET_VEGA, NET_THETA, GEX_TOTAL,
 MAX_GAMMA_STRIKE, GAMMA_CONC, GAMMA_FLIP, ATM30, ATM_CALL30, ATM_PUT30, CALL25_30, PUT25_30, ATM90,
 FRONT_OI, NEXT_OI, ATM_FRONT, ATM_NEXT) = range(N_RAW)


@njit(cache=True)
def interp_sorted(xs, ys, n, x):
    """Linear interpolation of y at x over the first n points (xs ascending); NaN outside."""
    if n == 0 or x < xs[0] or x > xs[n - 1]:
        return np.nan
    for i in range(1, n):
        if xs[i] >= x:
            x0, x1 = xs[i - 1], xs[i]
            if x1 == x0:
                return ys[i]
            return ys[i - 1] + (ys[i] - ys[i - 1]) * (x - x0) / (x1 - x0)
    return ys[0]  # n == 1 and x == xs[0]


@njit(cache=True)
def interp_total_variance(ts, ivs, n, t):
    """IV at maturity t from (T, iv) points (T ascending), linear in total variance iv^2*T.

    Points with NaN iv are skipped; flat in iv before the first and after the last valid point.
    """
    t_lo, iv_lo, t_hi, iv_hi = -1.0, np.nan, -1.0, np.nan
    first_iv, last_iv = np.nan, np.nan
    for i in range(n):
        if not ivs[i] > 0.0:
            continue
        if math.isnan(first_iv):
            first_iv = ivs[i]
        last_iv = ivs[i]
        if ts[i] <= t:
            t_lo, iv_lo = ts[i], ivs[i]
        elif t_hi < 0.0:
            t_hi, iv_hi = ts[i], ivs[i]
    if math.isnan(first_iv):
        return np.nan
    if t_lo < 0.0:
        return first_iv
    if t_hi < 0.0:
        return last_iv
    w_lo, w_hi = iv_lo * iv_lo * t_lo, iv_hi * iv_hi * t_hi
    w = w_lo + (w_hi - w_lo) * (t - t_lo) / (t_hi - t_lo)
    return math.sqrt(w / t) if w > 0.0 else np.nan


@njit(cache=True)
def _smile_points(strike, iv, delta, a, b, spot, target_delta, xs, ys):
    """ATM IV (interpolated in strike at spot) and IV at |delta| = target_delta (interpolated in
    delta) of one right of one expiration, rows [a, b) sorted by strike."""
    n = 0
    for i in range(a, b):
        if iv[i] > 0.0:
            xs[n] = strike[i]
            ys[n] = iv[i]
            n += 1
    atm = interp_sorted(xs, ys, n, spot)
    # |delta| moves monotonically with strike (down for calls, up for puts): interpolate on the
    # first adjacent pair that brackets the target.
    wing = np.nan
    prev = -1
    for i in range(a, b):
        if not (iv[i] > 0.0) or math.isnan(delta[i]):
            continue
        if prev >= 0:
            d0, d1 = abs(delta[prev]), abs(delta[i])
            if (d0 - target_delta) * (d1 - target_delta) <= 0.0:
                wing = iv[prev] if d1 == d0 else iv[prev] + (iv[i] - iv[prev]) * (target_delta - d0) / (d1 - d0)
                break
        prev = i
    return atm, wing


@njit(cache=True)
def _gamma_profile(strike, gamma, oi, is_call, a, b, spot, order, k_strikes, k_gex):
    """Net GEX by strike for rows [a, b); returns (n strikes, total, max-|GEX| strike,
    concentration, flip strike). ``order`` sorts the day's rows by strike."""
    scale = CONTRACT_MULTIPLIER * spot * spot * 0.01
    n = 0
    for j in range(b - a):
        i = a + order[j]
        if oi[i] < 0 or math.isnan(gamma[i]):
            continue
        g = gamma[i] * oi[i] * scale
        if not is_call[i]:
            g = -g
        if n > 0 and k_strikes[n - 1] == strike[i]:
            k_gex[n - 1] += g
        else:
            k_strikes[n] = strike[i]
            k_gex[n] = g
            n += 1
    if n == 0:
        return 0, np.nan, np.nan, np.nan, np.nan
    total, abs_sum, best, best_abs = 0.0, 0.0, 0, -1.0
    for k in range(n):
        total += k_gex[k]
        g_abs = abs(k_gex[k])
        abs_sum += g_abs
        if g_abs > best_abs:
            best, best_abs = k, g_abs
    concentration = best_abs / abs_sum if abs_sum > 0.0 else np.nan
    # flip: sign change of the per-strike profile (zero strikes skipped), nearest to spot
    flip, flip_dist, prev = np.nan, np.inf, -1
    for k in range(n):
        if k_gex[k] == 0.0:
            continue
        if prev >= 0 and (k_gex[prev] > 0.0) != (k_gex[k] > 0.0):
            w = k_gex[prev] / (k_gex[prev] - k_gex[k])
            level = k_strikes[prev] + w * (k_strikes[k] - k_strikes[prev])
            if abs(level - spot) < flip_dist:
                flip, flip_dist = level, abs(level - spot)
        prev = k
    return n, total, k_strikes[best], concentration, flip


@njit(cache=True)
def daily_options_features(day_starts, quote_date, expiration, strike, is_call, iv, delta, gamma,
                           theta, vega, underlying_price, volume, open_interest):
    """Raw per-day aggregates; row d of the result covers rows [day_starts[d], day_starts[d+1])."""
    n_days = len(day_starts) - 1
    out = np.full((n_days, N_RAW), np.nan)
    max_rows = 0
    for d in range(n_days):
        max_rows = max(max_rows, day_starts[d + 1] - day_starts[d])
    xs = np.empty(max_rows)
    ys = np.empty(max_rows)
    k_strikes = np.empty(max_rows)
    k_gex = np.empty(max_rows)
    # per-expiration scratch: T, atm call, atm put, atm mean, 25d call, 25d put, OI
    e_t = np.empty(max_rows)
    e_vals = np.empty((6, max_rows))
    for d in range(n_days):
        a, b = day_starts[d], day_starts[d + 1]
        if a == b:
            continue
        row = out[d]
        spot = underlying_price[a]
        row[SPOT] = spot
        c_oi = p_oi = c_vol = p_vol = 0.0
        n_oi = n_vol = 0
        # open-interest-weighted mean of delta, gamma (puts negative), vega, theta; each over the
        # rows where that greek is known
        greek_sum = np.zeros(4)
        greek_oi = np.zeros(4)
        for i in range(a, b):
            if open_interest[i] >= 0:
                n_oi += 1
                if is_call[i]:
                    c_oi += open_interest[i]
                else:
                    p_oi += open_interest[i]
                values = (delta[i], gamma[i] if is_call[i] else -gamma[i], vega[i], theta[i])
                for k in range(4):
                    if not math.isnan(values[k]):
                        greek_sum[k] += values[k] * open_interest[i]
                        greek_oi[k] += open_interest[i]
            if volume[i] >= 0:
                n_vol += 1
                if is_call[i]:
                    c_vol += volume[i]
                else:
                    p_vol += volume[i]
        if n_oi:
            row[CALL_OI], row[PUT_OI] = c_oi, p_oi
        if n_vol:
            row[CALL_VOL], row[PUT_VOL] = c_vol, p_vol
        for k in range(4):
            if greek_oi[k] > 0.0:
                row[NET_DELTA + k] = greek_sum[k] / greek_oi[k]

        order = np.argsort(strike[a:b], kind="mergesort")
        n_k, total, kmax, conc, flip = _gamma_profile(strike, gamma, open_interest, is_call, a, b, spot,
                                                      order, k_strikes, k_gex)
        if n_k:
            row[GEX_TOTAL], row[MAX_GAMMA_STRIKE], row[GAMMA_CONC], row[GAMMA_FLIP] = total, kmax, conc, flip

        # per expiration (rows are grouped by expiration; calls precede puts)
        n_e = 0
        e0 = a
        while e0 < b:
            e1 = e0
            while e1 < b and expiration[e1] == expiration[e0]:
                e1 += 1
            dte = expiration[e0] - quote_date[a]
            if dte >= 1:
                split = e0
                while split < e1 and is_call[split]:
                    split += 1
                c_atm, c25 = _smile_points(strike, iv, delta, e0, split, spot, 0.25, xs, ys)
                p_atm, p25 = _smile_points(strike, iv, delta, split, e1, spot, 0.25, xs, ys)
                e_oi = 0.0
                for i in range(e0, e1):
                    if open_interest[i] >= 0:
                        e_oi += open_interest[i]
                e_t[n_e] = dte / YEAR_DAYS
                e_vals[0, n_e] = c_atm
                e_vals[1, n_e] = p_atm
                if c_atm > 0.0 and p_atm > 0.0:
                    e_vals[2, n_e] = 0.5 * (c_atm + p_atm)
                else:
                    e_vals[2, n_e] = c_atm if c_atm > 0.0 else p_atm
                e_vals[3, n_e] = c25
                e_vals[4, n_e] = p25
                e_vals[5, n_e] = e_oi if n_oi else np.nan
                n_e += 1
            e0 = e1
        if n_e == 0:
            continue
        t30, t90 = 30.0 / YEAR_DAYS, 90.0 / YEAR_DAYS
        row[ATM30] = interp_total_variance(e_t, e_vals[2], n_e, t30)
        row[ATM_CALL30] = interp_total_variance(e_t, e_vals[0], n_e, t30)
        row[ATM_PUT30] = interp_total_variance(e_t, e_vals[1], n_e, t30)
        row[CALL25_30] = interp_total_variance(e_t, e_vals[3], n_e, t30)
        row[PUT25_30] = interp_total_variance(e_t, e_vals[4], n_e, t30)
        row[ATM90] = interp_total_variance(e_t, e_vals[2], n_e, t90)
        row[FRONT_OI] = e_vals[5, 0]
        row[ATM_FRONT] = e_vals[2, 0]
        if n_e > 1:
            row[NEXT_OI] = e_vals[5, 1]
            row[ATM_NEXT] = e_vals[2, 1]
    return out
