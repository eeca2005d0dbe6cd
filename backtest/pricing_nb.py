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


@njit(cache=True)
def fill_greeks_array(is_call, s, k, t, r, q, sigma, delta, gamma, theta, vega, fill_all):
    """Write the greeks at ``sigma`` into delta, gamma, theta and vega (in place) where they are
    NaN, or everywhere with ``fill_all``; rows with nothing to fill are not priced. The values are
    bs_greeks's, bit for bit."""
    for i in range(len(s)):
        fill_delta = fill_all or np.isnan(delta[i])
        fill_gamma = fill_all or np.isnan(gamma[i])
        fill_theta = fill_all or np.isnan(theta[i])
        fill_vega = fill_all or np.isnan(vega[i])
        if not (fill_delta or fill_gamma or fill_theta or fill_vega):
            continue
        _, d, g, th, v = bs_greeks(is_call[i], s[i], k[i], t[i], r[i], q[i], sigma[i])
        if fill_delta:
            delta[i] = d
        if fill_gamma:
            gamma[i] = g
        if fill_theta:
            theta[i] = th
        if fill_vega:
            vega[i] = v


# --------------------------------------------------------------------------- Black-76 and implied volatility
#
# Implied volatility works on the normalised out-of-the-money Black price (Jäckel, "By
# Implication", Wilmott 2006) b(x, s) = e^{x/2} N(x/s + s/2) - e^{-x/2} N(x/s - s/2) with
# x = -|ln(F/K)| <= 0 and total volatility s = sigma * sqrt(T) (an in-the-money option's time
# value is the out-of-the-money option's price by put-call parity). b is convex below the
# inflection point s_c = sqrt(2|x|) (where b is tiny and ln b is the better objective) and
# concave above it.
#
# Two solvers share one safeguarded iteration (kept inside a shrinking bracket, bisection when a
# step leaves it):
# - ``normalised_implied_vol_2006``: Jäckel's 2006 two-branch initial guess and Halley steps
#   (about 3.5 price evaluations per option on the SPX chains). It builds the tables below and
#   is the fallback outside them.
# - ``normalised_implied_vol``: the initial guess is read from a table of the 2006 solver's exact
#   answers (bilinear interpolation in coordinates in which s is smooth: ln|x| across, and
#   1/sqrt(1 + ln(b_c/beta)) below b_c = b(x, s_c) or 1/sqrt(1 + ln((e^{x/2} - b_c)/(e^{x/2} - beta)))
#   above it), good to ~1e-4 relative, so that one Householder step of order 4 lands below double
#   precision and the step size proves it (about 1.01 price evaluations per option).
# Prices outside the no-arbitrage bounds (below the forward intrinsic value, at or above the
# forward/strike) give NaN.

_IV_MAX_ITER = 64
_HALLEY_CONVERGED = 1e-5  # a Halley step this small (relative) leaves an error ~1e-15
_HOUSEHOLDER_CONVERGED = 3e-4  # a 4th-order step this small leaves an error ~1e-14
_IV_BRACKET_TOL = 1e-15
_S_MAX = 50.0  # total volatility sigma*sqrt(T) above which a price is indistinguishable from its bound
# the guess tables span |x| = |ln(F/K)| in [1e-5, 20] on a log scale; outside: the 2006 guess
_TABLE_LOG_X_MIN = math.log(1e-5)
_TABLE_LOG_X_MAX = math.log(20.0)
IV_TABLE_SIZE = 257


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


@njit(cache=True, inline="always")
def _inflection(x: float, e_half_x: float) -> tuple[float, float]:
    """(s_c, b_c): the inflection point of b(x, .) and the price there (x < 0)."""
    s_c = math.sqrt(-2.0 * x)
    # at s_c, x/s_c + s_c/2 = 0, so b_c needs one tail probability only
    return s_c, 0.5 * e_half_x - norm_cdf(-s_c) / e_half_x


@njit(cache=True)
def _refine(beta: float, x: float, e_half_x: float, s: float, use_log: bool, householder: bool) -> float:
    """Solve b(x, s) = beta from the guess s: Halley (order 3) or Householder (order 4) steps on
    ln b - ln beta (use_log) or b - beta, kept inside a shrinking bracket."""
    lo, hi = 0.0, _S_MAX
    if not (s > lo and s < hi):
        s = math.sqrt(-2.0 * x)
    converged = _HOUSEHOLDER_CONVERGED if householder else _HALLEY_CONVERGED
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
        curvature = h * h / s - 0.25 * s
        v2 = v * curvature  # d2b/ds2
        v3 = v * (curvature * curvature - 3.0 * h * h / (s * s) - 0.25) if householder else 0.0  # d3b/ds3
        if use_log and b > 0.0:
            f = math.log(b / beta)
            g1 = v / b
            g2 = v2 / b - g1 * g1
            g3 = v3 / b - 3.0 * g1 * g2 - g1 * g1 * g1
        else:
            f = b - beta
            g1 = v
            g2 = v2
            g3 = v3
        s_new = np.nan
        if g1 > 0.0:
            newton = f / g1
            if householder:
                denom = 1.0 - newton * g2 / g1 + newton * newton * g3 / (6.0 * g1)
                step = newton * (1.0 - 0.5 * newton * g2 / g1) / denom if denom > 0.5 else newton
            else:
                denom = 1.0 - 0.5 * newton * g2 / g1
                step = newton / denom if denom > 0.5 else newton
            s_new = s - step
            # past this step size the remaining error is below double precision (cubic or
            # quartic convergence), so another evaluation would only confirm it
            if abs(step) <= converged * s:
                return s_new
        if not (s_new > lo and s_new < hi):
            s_new = 0.5 * (lo + hi)
        if hi - lo <= _IV_BRACKET_TOL * hi:
            return s_new
        s = s_new
    return s


@njit(cache=True)
def normalised_implied_vol_2006(beta: float, x: float) -> float:
    """Total volatility s with b(x, s) = beta, for x <= 0 and 0 < beta < e^{x/2}: Jäckel's 2006
    initial guess, then Halley steps."""
    if x == 0.0:
        # closed form at the money: beta = 1 - 2 N(-s/2)
        return -2.0 * _norm_ppf(0.5 * (1.0 - beta))
    e_half_x = math.exp(0.5 * x)
    s_c, b_c = _inflection(x, e_half_x)
    use_log = beta < b_c
    if use_log:
        # lower branch: ln b is close to linear in 1/s^2 there
        s = math.sqrt(2.0 * x * x / (-x - 4.0 * math.log(beta / b_c)))
        s = max(s, _SQRT_2PI * beta)
    else:
        s = -2.0 * _norm_ppf((e_half_x - beta) / (e_half_x - b_c) * norm_cdf(-0.5 * s_c))
    return _refine(beta, x, e_half_x, s, use_log, False)


@njit(cache=True)
def build_iv_guess_table(n: int) -> np.ndarray:
    """The guess tables of ``normalised_implied_vol``, shape (2, n, n): [0] s/s_c below b_c,
    [1] s_c/s above it, at ln|x| = i/(n-1) of the way from 1e-5 to 20 and the branch's
    coordinate w = j/(n-1) (0: s -> 0 resp. s -> infinity, 1: s = s_c); NaN where the price
    underflows."""
    table = np.empty((2, n, n))
    for i in range(n):
        x = -math.exp(_TABLE_LOG_X_MIN + (_TABLE_LOG_X_MAX - _TABLE_LOG_X_MIN) * i / (n - 1))
        e_half_x = math.exp(0.5 * x)
        s_c, b_c = _inflection(x, e_half_x)
        table[0, i, 0] = 0.0
        table[1, i, 0] = 0.0
        for j in range(1, n):
            w = j / (n - 1)
            shrink = math.exp(1.0 - 1.0 / (w * w))  # inverts w = 1/sqrt(1 + ln(1/shrink))
            beta = b_c * shrink
            table[0, i, j] = normalised_implied_vol_2006(beta, x) / s_c if beta > 0.0 else np.nan
            beta = e_half_x - (e_half_x - b_c) * shrink
            table[1, i, j] = s_c / normalised_implied_vol_2006(beta, x) if beta < e_half_x else np.nan
    return table


@njit(cache=True, inline="always")
def _bilinear(table: np.ndarray, branch: int, u: float, w: float) -> float:
    """table[branch] at fractional coordinates u, w in [0, 1]."""
    n = table.shape[1] - 1
    fu = u * n
    fw = w * n
    i = min(int(fu), n - 1)
    j = min(int(fw), n - 1)
    au = fu - i
    aw = fw - j
    t = table[branch]
    return (1.0 - au) * ((1.0 - aw) * t[i, j] + aw * t[i, j + 1]) + au * ((1.0 - aw) * t[i + 1, j] + aw * t[i + 1, j + 1])


@njit(cache=True)
def normalised_implied_vol(beta: float, x: float, e_half_x: float, guess: np.ndarray) -> float:
    """Total volatility s with b(x, s) = beta, for x <= 0 and 0 < beta < e_half_x = e^{x/2}:
    a guess from ``guess`` (``build_iv_guess_table``), then Householder steps."""
    if x == 0.0:
        return -2.0 * _norm_ppf(0.5 * (1.0 - beta))
    u = (math.log(-x) - _TABLE_LOG_X_MIN) / (_TABLE_LOG_X_MAX - _TABLE_LOG_X_MIN)
    if not (u >= 0.0 and u <= 1.0):
        return normalised_implied_vol_2006(beta, x)
    s_c, b_c = _inflection(x, e_half_x)
    use_log = beta < b_c
    if use_log:
        s = s_c * _bilinear(guess, 0, u, 1.0 / math.sqrt(1.0 + math.log(b_c / beta)))
    else:
        s = s_c / _bilinear(guess, 1, u, 1.0 / math.sqrt(1.0 + math.log((e_half_x - b_c) / (e_half_x - beta))))
    if not (s > 0.0 and s < _S_MAX):  # a NaN cell: the price underflows there
        return normalised_implied_vol_2006(beta, x)
    return _refine(beta, x, e_half_x, s, use_log, True)


@njit(cache=True, inline="always")
def _normalised_inputs(is_call: bool, price: float, f: float, k: float, t: float, df: float):
    """(beta, x, e^{x/2}) of a Black-76 price, or beta = NaN outside the no-arbitrage bounds,
    0 at intrinsic value."""
    if not (f > 0.0 and k > 0.0 and t > 0.0 and df > 0.0 and price >= 0.0):
        return np.nan, 0.0, 1.0
    undiscounted = price / df
    intrinsic = max(f - k, 0.0) if is_call else max(k - f, 0.0)
    upper = f if is_call else k
    if undiscounted < intrinsic or undiscounted >= upper:
        return np.nan, 0.0, 1.0
    time_value = undiscounted - intrinsic
    x = -abs(math.log(f / k))
    e_half_x = math.exp(0.5 * x)
    beta = time_value / math.sqrt(f * k)
    if beta >= e_half_x:
        return np.nan, x, e_half_x
    return beta, x, e_half_x


@njit(cache=True)
def black_implied_vol(is_call: bool, price: float, f: float, k: float, t: float, df: float, guess: np.ndarray) -> float:
    """Black-76 implied volatility of a European option price; NaN outside the no-arbitrage
    bounds (undiscounted price below max(theta (f - k), 0) or at/above f for calls, k for puts).
    A price exactly at intrinsic value gives 0. ``guess``: ``build_iv_guess_table``'s tables."""
    beta, x, e_half_x = _normalised_inputs(is_call, price, f, k, t, df)
    if not beta > 0.0:
        return beta  # NaN, or 0 at intrinsic value
    return normalised_implied_vol(beta, x, e_half_x, guess) / math.sqrt(t)


@njit(cache=True)
def black_implied_vol_2006(is_call: bool, price: float, f: float, k: float, t: float, df: float) -> float:
    """``black_implied_vol`` with the 2006 solver (the table builder; a benchmark baseline)."""
    beta, x, _ = _normalised_inputs(is_call, price, f, k, t, df)
    if not beta > 0.0:
        return beta
    return normalised_implied_vol_2006(beta, x) / math.sqrt(t)


@njit(cache=True, parallel=True)
def black_implied_vol_array(is_call, price, f, k, t, df, guess, out):
    for i in prange(len(price)):
        out[i] = black_implied_vol(is_call[i], price[i], f[i], k[i], t[i], df[i], guess)


@njit(cache=True, parallel=True)
def black_implied_vol_2006_array(is_call, price, f, k, t, df, out):
    for i in prange(len(price)):
        out[i] = black_implied_vol_2006(is_call[i], price[i], f[i], k[i], t[i], df[i])


@njit(cache=True, parallel=True)
def black_price_array(is_call, f, k, t, df, sigma, out):
    for i in prange(len(f)):
        out[i] = black_price(is_call[i], f[i], k[i], t[i], df[i], sigma[i])
