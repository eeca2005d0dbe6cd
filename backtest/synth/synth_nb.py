"""Numba kernels of the synthetic market: the underlying's path, the SSVI surface with plants
and quotes for every listed contract, and the VIX-like variance-swap strip.

All are pure functions over arrays; :mod:`backtest.synth.generator` wraps them.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from backtest.pricing_nb import bs_delta, bs_greeks, norm_cdf

YEAR_DAYS = 365.0


@njit(cache=True)
def simulate_path(
    dt, z, u, realistic, start_regime, start_variance, rate, div_yield,
    p_switch, var_level, var_reversion, vol_of_vol, rho, entry_jump, excess_drift,
    jump_intensity, jump_mean, jump_sd, jump_kick, null_variance,
):
    """Step the regime chain, variance and log price once per trading day.

    dt[t]: calendar years since the previous close; z[t, 0:3] standard normals; u[t, 0:3]
    uniforms. p_switch[r]: daily probability of leaving regime r. Per-regime arrays are indexed
    by regime (0 calm, 1 stressed). Returns (log return, regime, variance at the close, jump flag).
    In null mode (realistic False) variance is constant and there are no jumps: only the regime
    labels move.
    """
    n = dt.shape[0]
    log_ret = np.empty(n)
    regime = np.empty(n, np.int8)
    variance = np.empty(n)
    jumped = np.zeros(n, np.bool_)
    reg = start_regime
    v = start_variance
    carry = rate - div_yield
    sq = math.sqrt(1.0 - rho * rho)
    for t in range(n):
        h = dt[t]
        if u[t, 0] < p_switch[reg]:
            reg = 1 - reg
            if realistic and reg == 1 and var_level[1] > v:
                v += (entry_jump[0] + (entry_jump[1] - entry_jump[0]) * u[t, 1]) * (var_level[1] - v)
        if not realistic:
            log_ret[t] = (carry - 0.5 * null_variance) * h + math.sqrt(null_variance * h) * z[t, 0]
            regime[t] = reg
            variance[t] = null_variance
            continue
        lam = jump_intensity[reg]
        jump = 0.0
        if u[t, 2] < 1.0 - math.exp(-lam * h):
            jump = jump_mean[reg] + jump_sd[reg] * z[t, 2]
            jumped[t] = True
        compensator = lam * (math.exp(jump_mean[reg] + 0.5 * jump_sd[reg] ** 2) - 1.0)
        zs = rho * z[t, 0] + sq * z[t, 1]
        log_ret[t] = (carry + excess_drift[reg] - compensator - 0.5 * v) * h + math.sqrt(v * h) * zs + jump
        v = v + var_reversion[reg] * (var_level[reg] - v) * h + vol_of_vol[reg] * math.sqrt(v * h) * z[t, 0]
        if jumped[t]:
            v += jump_kick * u[t, 1]
        v = max(v, 1e-4)
        regime[t] = reg
        variance[t] = v
    return log_ret, regime, variance, jumped


@njit(cache=True, inline="always")
def atm_total_variance(t, spot_variance, long_run, reversion, premium):
    """ATM implied total variance at maturity t: expected average variance (Heston-like mean
    reversion from the current level) as a vol, plus a premium in vol points, squared times t.
    Increasing in t for any inputs, so calendar spreads in total variance are never negative."""
    if reversion * t > 1e-8:
        weight = (1.0 - math.exp(-reversion * t)) / (reversion * t)
    else:
        weight = 1.0
    expected = long_run + (spot_variance - long_run) * weight
    vol = math.sqrt(expected) + premium
    return vol * vol * t


@njit(cache=True, inline="always")
def ssvi_total_variance(k, theta, rho, eta, gamma):
    """SSVI (Gatheral & Jacquier) with power-law phi = eta * theta^-gamma; eta = 0 is flat."""
    phi = eta * theta ** (-gamma)
    return 0.5 * theta * (1.0 + rho * phi * k + math.sqrt((phi * k + rho) ** 2 + 1.0 - rho * rho))


@njit(cache=True, inline="always")
def _band_weight(x, lo, hi, taper):
    if lo <= x <= hi:
        return 1.0
    dist = lo - x if x < lo else x - hi
    if taper <= 0.0 or dist >= taper:
        return 0.0
    return 1.0 - dist / taper


@njit(cache=True, inline="always")
def plant_bump(is_call, dte, abs_delta, regime, plants):
    """Sum of the plants' vol bumps (in vol units) for one quote.

    plants rows: [is_call, dte_lo, dte_hi, delta_lo, delta_hi, regime_mask, vol_points,
    taper_delta, taper_days]."""
    bump = 0.0
    for p in range(plants.shape[0]):
        if (plants[p, 0] > 0.5) != is_call:
            continue
        if (int(plants[p, 5]) >> regime) & 1 == 0:
            continue
        w = _band_weight(abs_delta, plants[p, 3], plants[p, 4], plants[p, 7])
        if w > 0.0:
            w *= _band_weight(float(dte), plants[p, 1], plants[p, 2], plants[p, 8])
        bump += w * plants[p, 6] / 100.0
    return bump


@njit(cache=True)
def quote_chain(
    pair_of_row, strike, is_call, pair_day, pair_dte, spot, spot_variance, long_run, premium,
    regime, rate, div_yield, reversion, rho, eta, gamma, american, plants,
    tick, width_abs, width_rel,
    iv_out, theo_out, bid_out, ask_out, delta_out, gamma_out, theta_out, vega_out, z_out,
):
    """Price and quote every row: SSVI implied vol (plus plants), BSM greeks at that vol, a
    theoretical value (floored at intrinsic for American style), and bid/ask on the tick grid
    around it with widths growing with moneyness, DTE extremes and volatility.

    Rows belong to (day, expiration) pairs (pair_day indexes the per-day arrays). z_out
    receives the standardised moneyness k / (ATM vol sqrt(T)) (used for open interest).
    Expiring rows (DTE 0) are quoted at intrinsic value with no IV and limit greeks."""
    inv_tick = round(1.0 / tick)
    n_pairs = pair_day.shape[0]
    fwd = np.empty(n_pairs)
    theta_atm = np.empty(n_pairs)
    atm_vol = np.empty(n_pairs)
    for j in range(n_pairs):
        d = pair_day[j]
        t = pair_dte[j] / YEAR_DAYS
        if pair_dte[j] > 0:
            fwd[j] = spot[d] * math.exp((rate - div_yield) * t)
            theta_atm[j] = atm_total_variance(t, spot_variance[d], long_run[d], reversion, premium[d])
            atm_vol[j] = math.sqrt(theta_atm[j] / t)
        else:
            fwd[j] = spot[d]
            theta_atm[j] = 0.0
            atm_vol[j] = math.sqrt(spot_variance[d])
    for i in range(pair_of_row.shape[0]):
        j = pair_of_row[i]
        d = pair_day[j]
        dte = pair_dte[j]
        s = spot[d]
        k_ = strike[i]
        c = is_call[i]
        intrinsic = max(s - k_, 0.0) if c else max(k_ - s, 0.0)
        t = dte / YEAR_DAYS
        if dte <= 0:
            theo = intrinsic
            iv_out[i] = np.nan
            delta_out[i] = (1.0 if s > k_ else 0.0) if c else (-1.0 if s < k_ else 0.0)
            gamma_out[i] = 0.0
            theta_out[i] = 0.0
            vega_out[i] = 0.0
            z_out[i] = 0.0
        else:
            k = math.log(k_ / fwd[j])
            iv = math.sqrt(ssvi_total_variance(k, theta_atm[j], rho, eta, gamma) / t)
            if plants.shape[0] > 0:
                base_delta = abs(bs_delta(c, s, k_, t, rate, div_yield, iv))
                iv = max(iv + plant_bump(c, dte, base_delta, regime[d], plants), 0.01)
            price, dl, gm, th, vg = bs_greeks(c, s, k_, t, rate, div_yield, iv)
            theo = max(price, intrinsic) if american else price
            iv_out[i] = iv
            delta_out[i] = dl
            gamma_out[i] = gm
            theta_out[i] = th
            vega_out[i] = vg
            z_out[i] = k / (atm_vol[j] * math.sqrt(t))
        theo_out[i] = theo
        m_money = 1.0 + 0.4 * min(abs(z_out[i]), 6.0)
        m_dte = 1.0 + 1.5 / (1.0 + dte) + 0.5 * t
        m_vol = math.sqrt(max(atm_vol[j], 0.05) / 0.15)
        half = 0.5 * max(tick, (width_abs + width_rel * theo) * m_money * m_dte * m_vol)
        bid_ticks = max(math.floor((theo - half) * inv_tick + 1e-7), 0.0)
        ask_ticks = max(math.ceil((theo + half) * inv_tick - 1e-7), bid_ticks + 1.0)
        bid_out[i] = bid_ticks / inv_tick
        ask_out[i] = ask_ticks / inv_tick


@njit(cache=True)
def variance_swap_vol(t, spot_variance, long_run, premium, reversion, rho, eta, gamma):
    """Per day: sqrt of the fair variance at maturity t from the OTM option strip of the
    (unplanted) surface, the VIX formula (2/T) sum OTM(K)/K^2 dK in forward units."""
    n = spot_variance.shape[0]
    out = np.empty(n)
    dk = 0.005
    for d in range(n):
        theta = atm_total_variance(t, spot_variance[d], long_run[d], reversion, premium[d])
        acc = 0.0
        k = -2.5
        while k <= 1.5:
            w = ssvi_total_variance(k, theta, rho, eta, gamma)
            sw = math.sqrt(w)
            strike = math.exp(k)
            d1 = (-k + 0.5 * w) / sw
            d2 = d1 - sw
            if k < 0.0:
                otm = strike * norm_cdf(-d2) - norm_cdf(-d1)
            else:
                otm = norm_cdf(d1) - strike * norm_cdf(d2)
            acc += otm / strike * dk  # OTM / K^2 * dK with dK = K dk
            k += dk
        out[d] = math.sqrt(2.0 * acc / t)
    return out



@njit(cache=True)
def _band_grid(lo, hi, ratios, out, pos):
    """Write the union grid of one hull at out[pos:] (or only count when out is too short):
    band b lists multiples of ratios[b] inside its span but outside the finer band's span."""
    m = 0
    for b in range(3):
        if lo[b] > hi[b]:
            continue
        step = ratios[b]
        has_inner = b < 2 and lo[b + 1] <= hi[b + 1]
        u = -(-lo[b] // step) * step
        while u <= hi[b]:
            if not (has_inner and lo[b + 1] <= u <= hi[b + 1]):
                if pos + m < out.shape[0]:
                    out[pos + m] = u
                m += 1
            u += step
    return m


@njit(cache=True)
def list_strikes(pair_exp, window_lo, window_hi, hull_lo, hull_hi, ratios):
    """Strike grids of (day, expiration) pairs, in units of the finest strike step.

    window_lo/hi[i, b]: pair i's listing window today for band b (0 coarse, 1 medium, 2 fine;
    lo > hi when the band is not listed). hull_lo/hi[e, b] (state, updated in place) hold the
    span listed so far for expiration e, so a listed strike stays listed until expiration.
    Windows are nested (fine in medium in coarse) and so are the hulls.
    Returns rows in the store's order, each pair's calls then its puts by ascending strike:
    (strike units, is_call, pair index).
    """
    n = pair_exp.shape[0]
    units = np.empty(max(n * 64, 16), np.int64)
    counts = np.zeros(n, np.int64)
    pos = 0
    for i in range(n):
        e = pair_exp[i]
        for b in range(3):
            if window_lo[i, b] <= window_hi[i, b]:
                hull_lo[e, b] = min(hull_lo[e, b], window_lo[i, b])
                hull_hi[e, b] = max(hull_hi[e, b], window_hi[i, b])
        m = _band_grid(hull_lo[e], hull_hi[e], ratios, units, pos)
        if pos + m > units.shape[0]:
            bigger = np.empty(2 * (pos + m), np.int64)
            bigger[:pos] = units[:pos]
            units = bigger
            _band_grid(hull_lo[e], hull_hi[e], ratios, units, pos)
        units[pos:pos + m].sort()
        counts[i] = m
        pos += m
    rows = 2 * pos
    strike_units = np.empty(rows, np.int64)
    is_call = np.empty(rows, np.bool_)
    pair = np.empty(rows, np.int64)
    src = 0
    dst = 0
    for i in range(n):
        m = counts[i]
        for right in range(2):
            for j in range(m):
                strike_units[dst] = units[src + j]
                is_call[dst] = right == 0
                pair[dst] = i
                dst += 1
        src += m
    return strike_units, is_call, pair
