"""Numba kernels: Black-Scholes-Merton prices and greeks (continuous rate r and yield q).

Scalar functions are pure and inlined into the array loops below and into other kernels.
Conventions (shared with the store): time in years (calendar days / 365), theta per calendar
day, vega per one volatility point (0.01). Black-76 is the q = r special case on the forward.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@njit(cache=True, inline="always")
def norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / _SQRT2)


@njit(cache=True, inline="always")
def norm_pdf(x: float) -> float:
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


@njit(cache=True)
def bs_price(is_call: bool, s: float, k: float, t: float, r: float, q: float, sigma: float) -> float:
    if not (s > 0.0 and k > 0.0) or t < 0.0 or sigma < 0.0:
        return np.nan
    df_r = math.exp(-r * t)
    df_q = math.exp(-q * t)
    if t == 0.0 or sigma == 0.0:
        fwd_intrinsic = s * df_q - k * df_r
        return max(fwd_intrinsic, 0.0) if is_call else max(-fwd_intrinsic, 0.0)
    vol_t = sigma * math.sqrt(t)
    d1 = (math.log(s / k) + (r - q + 0.5 * sigma * sigma) * t) / vol_t
    d2 = d1 - vol_t
    if is_call:
        return s * df_q * norm_cdf(d1) - k * df_r * norm_cdf(d2)
    return k * df_r * norm_cdf(-d2) - s * df_q * norm_cdf(-d1)


@njit(cache=True)
def bs_delta(is_call: bool, s: float, k: float, t: float, r: float, q: float, sigma: float) -> float:
    if not (s > 0.0 and k > 0.0 and t > 0.0 and sigma > 0.0):
        return np.nan
    vol_t = sigma * math.sqrt(t)
    d1 = (math.log(s / k) + (r - q + 0.5 * sigma * sigma) * t) / vol_t
    df_q = math.exp(-q * t)
    return df_q * norm_cdf(d1) if is_call else -df_q * norm_cdf(-d1)


@njit(cache=True)
def bs_greeks(is_call: bool, s: float, k: float, t: float, r: float, q: float, sigma: float):
    """(price, delta, gamma, theta per calendar day, vega per vol point)."""
    if not (s > 0.0 and k > 0.0 and t > 0.0 and sigma > 0.0):
        nan = np.nan
        return nan, nan, nan, nan, nan
    sqrt_t = math.sqrt(t)
    vol_t = sigma * sqrt_t
    d1 = (math.log(s / k) + (r - q + 0.5 * sigma * sigma) * t) / vol_t
    d2 = d1 - vol_t
    df_r = math.exp(-r * t)
    df_q = math.exp(-q * t)
    pdf = norm_pdf(d1)
    gamma = df_q * pdf / (s * vol_t)
    vega = s * df_q * pdf * sqrt_t
    decay = -s * df_q * pdf * sigma / (2.0 * sqrt_t)
    if is_call:
        price = s * df_q * norm_cdf(d1) - k * df_r * norm_cdf(d2)
        delta = df_q * norm_cdf(d1)
        theta = decay - r * k * df_r * norm_cdf(d2) + q * s * df_q * norm_cdf(d1)
    else:
        price = k * df_r * norm_cdf(-d2) - s * df_q * norm_cdf(-d1)
        delta = -df_q * norm_cdf(-d1)
        theta = decay + r * k * df_r * norm_cdf(-d2) - q * s * df_q * norm_cdf(-d1)
    return price, delta, gamma, theta / 365.0, vega / 100.0


@njit(cache=True, parallel=True)
def bs_greeks_array(is_call, s, k, t, r, q, sigma, out_price, out_delta, out_gamma, out_theta, out_vega):
    for i in prange(len(s)):
        p, d, g, th, v = bs_greeks(is_call[i], s[i], k[i], t[i], r[i], q[i], sigma[i])
        out_price[i] = p
        out_delta[i] = d
        out_gamma[i] = g
        out_theta[i] = th
        out_vega[i] = v
