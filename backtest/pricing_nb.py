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
_SQRT_2PI = math.sqrt(2.0 * math.pi)


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


# --------------------------------------------------------------------------- Black-76 and implied volatility
#
# Implied volatility follows Jäckel, "By Implication" (Wilmott, 2006): the price is reduced to the
# normalised out-of-the-money Black price b(x, s) = e^{x/2} N(x/s + s/2) - e^{-x/2} N(x/s - s/2)
# with x = -|ln(F/K)| <= 0 and s = sigma * sqrt(T) (an in-the-money option's time value is the
# out-of-the-money option's price by put-call parity), started from Jäckel's two-branch initial
# guess around the inflection point s_c = sqrt(2|x|), and refined by Halley steps on
# ln b(s) - ln beta below b(s_c) (where b is convex and tiny) and on b(s) - beta above it, kept
# inside a shrinking bracket (bisection when a step leaves it). Prices outside the no-arbitrage
# bounds (below the forward intrinsic value, at or above the forward/strike) give NaN.

_IV_MAX_ITER = 64
_IV_CONVERGED = 1e-5
_IV_BRACKET_TOL = 1e-15
_S_MAX = 50.0  # total volatility sigma*sqrt(T) above which a price is indistinguishable from its bound


@njit(cache=True)
def black_price(is_call: bool, f: float, k: float, t: float, df: float, sigma: float) -> float:
    """Black-76 price of a European option on a forward f, discount factor df = exp(-r T)."""
    if not (f > 0.0 and k > 0.0 and df > 0.0) or t < 0.0 or sigma < 0.0:
        return np.nan
    if t == 0.0 or sigma == 0.0:
        return df * (max(f - k, 0.0) if is_call else max(k - f, 0.0))
    s = sigma * math.sqrt(t)
    d1 = math.log(f / k) / s + 0.5 * s
    d2 = d1 - s
    if is_call:
        return df * (f * norm_cdf(d1) - k * norm_cdf(d2))
    return df * (k * norm_cdf(-d2) - f * norm_cdf(-d1))


@njit(cache=True, inline="always")
def _otm_normalised(x: float, s: float, e_half_x: float) -> float:
    """b(x, s) for x <= 0, the normalised out-of-the-money call price; e_half_x = exp(x/2)."""
    h = x / s
    return e_half_x * norm_cdf(h + 0.5 * s) - norm_cdf(h - 0.5 * s) / e_half_x


@njit(cache=True, inline="always")
def _norm_ppf(p: float) -> float:
    """Inverse normal CDF (Acklam's rational approximation with one Halley refinement)."""
    if p <= 0.0:
        return -np.inf
    if p >= 1.0:
        return np.inf
    if p < 0.02425:
        q = math.sqrt(-2.0 * math.log(p))
        x = (((((-7.784894002430293e-03 * q - 3.223964580411365e-01) * q - 2.400758277161838e00) * q
               - 2.549732539343734e00) * q + 4.374664141464968e00) * q + 2.938163982698783e00) / (
            (((7.784695709041462e-03 * q + 3.224671290700398e-01) * q + 2.445134137142996e00) * q
             + 3.754408661907416e00) * q + 1.0)
    elif p > 1.0 - 0.02425:
        q = math.sqrt(-2.0 * math.log(1.0 - p))
        x = -(((((-7.784894002430293e-03 * q - 3.223964580411365e-01) * q - 2.400758277161838e00) * q
                - 2.549732539343734e00) * q + 4.374664141464968e00) * q + 2.938163982698783e00) / (
            (((7.784695709041462e-03 * q + 3.224671290700398e-01) * q + 2.445134137142996e00) * q
             + 3.754408661907416e00) * q + 1.0)
    else:
        q = p - 0.5
        r = q * q
        x = (((((-3.969683028665376e01 * r + 2.209460984245205e02) * r - 2.759285104469687e02) * r
               + 1.383577518672690e02) * r - 3.066479806614716e01) * r + 2.506628277459239e00) * q / (
            ((((-5.447609879822406e01 * r + 1.615858368580409e02) * r - 1.556989798598866e02) * r
              + 6.680131188771972e01) * r - 1.328068155288572e01) * r + 1.0)
    e = norm_cdf(x) - p
    u = e * math.sqrt(2.0 * math.pi) * math.exp(0.5 * x * x)
    return x - u / (1.0 + 0.5 * x * u)


@njit(cache=True)
def normalised_implied_vol(beta: float, x: float) -> float:
    """Total volatility s with b(x, s) = beta, for x <= 0 and 0 < beta < e^{x/2}."""
    if x == 0.0:
        # closed form at the money: beta = 1 - 2 N(-s/2)
        return -2.0 * _norm_ppf(0.5 * (1.0 - beta))
    e_half_x = math.exp(0.5 * x)
    s_c = math.sqrt(-2.0 * x)
    # at the inflection point x/s_c + s_c/2 = 0, so b_c needs one tail probability only
    b_c = 0.5 * e_half_x - norm_cdf(-s_c) / e_half_x
    use_log = beta < b_c
    if use_log:
        # lower branch: ln b is close to linear in 1/s^2 there
        s = math.sqrt(2.0 * x * x / (-x - 4.0 * math.log(beta / b_c)))
        s = max(s, _SQRT_2PI * beta)
    else:
        s = -2.0 * _norm_ppf((e_half_x - beta) / (e_half_x - b_c) * norm_cdf(-0.5 * s_c))
    lo, hi = 0.0, _S_MAX
    if not (s > lo and s < hi):
        s = s_c
    log_beta = math.log(beta)
    for _ in range(_IV_MAX_ITER):
        b = _otm_normalised(x, s, e_half_x)
        if b > beta:
            hi = s
        elif b < beta:
            lo = s
        else:
            return s
        h = x / s
        v = _INV_SQRT_2PI * math.exp(-0.5 * h * h - 0.125 * s * s)  # db/ds
        v2 = v * (h * h / s - 0.25 * s)  # d2b/ds2
        if use_log and b > 0.0:
            f = math.log(b) - log_beta
            g1 = v / b
            g2 = v2 / b - g1 * g1
        else:
            f = b - beta
            g1 = v
            g2 = v2
        s_new = np.nan
        if g1 > 0.0:
            newton = f / g1
            denom = 1.0 - 0.5 * newton * g2 / g1
            step = newton / denom if denom > 0.5 else newton
            s_new = s - step
            # Halley converges cubically: after a step this small the remaining error is
            # below double precision, so another evaluation would only confirm it
            if abs(step) <= _IV_CONVERGED * s:
                return s_new
        if not (s_new > lo and s_new < hi):
            s_new = 0.5 * (lo + hi)
        if hi - lo <= _IV_BRACKET_TOL * hi:
            return s_new
        s = s_new
    return s


@njit(cache=True)
def black_implied_vol(is_call: bool, price: float, f: float, k: float, t: float, df: float) -> float:
    """Black-76 implied volatility of a European option price; NaN outside the no-arbitrage
    bounds (undiscounted price below max(theta (f - k), 0) or at/above f for calls, k for puts).
    A price exactly at intrinsic value gives 0."""
    if not (f > 0.0 and k > 0.0 and t > 0.0 and df > 0.0 and price >= 0.0):
        return np.nan
    undiscounted = price / df
    intrinsic = max(f - k, 0.0) if is_call else max(k - f, 0.0)
    upper = f if is_call else k
    if undiscounted < intrinsic or undiscounted >= upper:
        return np.nan
    time_value = undiscounted - intrinsic
    if time_value == 0.0:
        return 0.0
    sqrt_fk = math.sqrt(f * k)
    x = -abs(math.log(f / k))
    beta = time_value / sqrt_fk
    if beta >= math.exp(0.5 * x):
        return np.nan
    return normalised_implied_vol(beta, x) / math.sqrt(t)


@njit(cache=True, parallel=True)
def black_implied_vol_array(is_call, price, f, k, t, df, out):
    for i in prange(len(price)):
        out[i] = black_implied_vol(is_call[i], price[i], f[i], k[i], t[i], df[i])


@njit(cache=True, parallel=True)
def black_price_array(is_call, f, k, t, df, sigma, out):
    for i in prange(len(f)):
        out[i] = black_price(is_call[i], f[i], k[i], t[i], df[i], sigma[i])
