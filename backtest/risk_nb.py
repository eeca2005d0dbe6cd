"""Numba kernels of the portfolio risk layer (:mod:`backtest.risk`): implied volatility from a
quote, and the dollar delta and vega of open positions on every day of a backtest window.

Greeks come from the engine's own Black-Scholes pricer (``pricing_nb``) at the volatility implied
by each leg's mid quote, with zero rate and dividend yield (the convention of the risk layer: at
these inputs the model reprices every mark exactly, so stress P&L is measured from the marks).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from backtest import engine_nb, pricing_nb

YEAR_DAYS = 365.0
VOL_LOW, VOL_HIGH = 1e-4, 5.0
_BISECTIONS = 80  # halves [VOL_LOW, VOL_HIGH] below 1e-20: far under a cent of price


@njit(cache=True)
def implied_vol(price, is_call, s, k, t):
    """Black-Scholes volatility (r = q = 0) whose price equals ``price``; NaN when the price lies
    outside the model's range (below intrinsic, above the bound) or t <= 0."""
    if not (t > 0.0 and s > 0.0 and k > 0.0):
        return np.nan
    lo_price = pricing_nb.bs_price(is_call, s, k, t, 0.0, 0.0, VOL_LOW)
    hi_price = pricing_nb.bs_price(is_call, s, k, t, 0.0, 0.0, VOL_HIGH)
    if price < lo_price or price > hi_price:
        return np.nan
    lo, hi = VOL_LOW, VOL_HIGH
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        if pricing_nb.bs_price(is_call, s, k, t, 0.0, 0.0, mid) < price:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@njit(cache=True)
def implied_vols(price, is_call, s, k, t):
    out = np.empty(len(price))
    for i in range(len(price)):
        out[i] = implied_vol(price[i], is_call[i], s[i], k[i], t[i])
    return out


@njit(cache=True)
def leg_row(d, expiration, root, is_call, k, day_group_start, group_expiration, group_root,
            group_row_start, group_put_start, strike):
    """Row of the leg's quote on day d, or -1 when the chain has none."""
    g = engine_nb.find_group(day_group_start, group_expiration, group_root, d, expiration, root)
    if g < 0:
        return -1
    lo, hi = engine_nb.segment(group_row_start, group_put_start, g, is_call)
    return engine_nb.find_strike(strike, lo, hi, k)


@njit(cache=True)
def leg_rows(d, expiration, root, is_call, k, day_group_start, group_expiration, group_root,
             group_row_start, group_put_start, strike):
    out = np.empty(len(expiration), dtype=np.int64)
    for i in range(len(expiration)):
        out[i] = leg_row(d, expiration[i], root[i], is_call[i], k[i], day_group_start,
                         group_expiration, group_root, group_row_start, group_put_start, strike)
    return out


@njit(cache=True)
def open_greeks(first_day, last_day, contracts, n_legs, leg_k, leg_exp, leg_root, leg_call,
                leg_qty, mult, d0, n_t, days, close, day_group_start, group_expiration, group_root,
                group_row_start, group_put_start, strike, bid, ask):
    """Dollar delta (per 1.00 of underlying move x spot, i.e. delta dollars) and dollar vega (per
    vol point) of trade i on window days first_day[i]..last_day[i] (inclusive), summed per day.
    A leg without a quote that day, or whose price implies no volatility, adds nothing."""
    delta_usd = np.zeros(n_t)
    vega_usd = np.zeros(n_t)
    for i in range(len(contracts)):
        for t in range(max(first_day[i], 0), min(last_day[i], n_t - 1) + 1):
            d = d0 + t
            s = close[d]
            for j in range(n_legs[i]):
                expiry = leg_exp[i, j]
                if expiry <= days[d]:
                    continue
                r = leg_row(d, expiry, leg_root[i, j], leg_call[i, j], leg_k[i, j], day_group_start,
                            group_expiration, group_root, group_row_start, group_put_start, strike)
                if r < 0:
                    continue
                k = np.float64(leg_k[i, j])
                tau = (expiry - days[d]) / YEAR_DAYS
                mid = 0.5 * (np.float64(bid[r]) + np.float64(ask[r]))
                vol = implied_vol(mid, leg_call[i, j], s, k, tau)
                if vol != vol:
                    continue
                _, dl, _, _, vg = pricing_nb.bs_greeks(leg_call[i, j], s, k, tau, 0.0, 0.0, vol)
                size = contracts[i] * leg_qty[i, j] * mult
                delta_usd[t] += size * dl * s
                vega_usd[t] += size * vg
    return delta_usd, vega_usd
