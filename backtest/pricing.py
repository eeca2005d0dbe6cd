"""Typed numpy API over the pricing kernels in :mod:`backtest.pricing_nb`.

Prices, greeks and implied volatilities are European: Black-Scholes-Merton on the spot with a
continuous rate r and dividend yield q, which is Black-76 on the forward F = S e^{(r-q)T}.
Conventions: T in years = calendar days / 365, theta per calendar day, vega per vol point.

American-style equity options (SPY and other single names/ETFs) are treated with the European
formula on the mid price. The early-exercise premium that this ignores is small for
out-of-the-money and near-the-money options but not elsewhere: for deep in-the-money puts
(where early exercise is optimal once r K exceeds the time value) the American price exceeds the
European one, so the European implied volatility comes out too high and can fail altogether
(NaN: the mid is above the European no-arbitrage bound); for in-the-money calls shortly before
an ex-dividend date the same happens through the dividend. A continuous yield q also smears the
quarterly dividends over time. Implied volatilities and greeks of deep in-the-money American
options are therefore unreliable; use out-of-the-money options (|delta| <= ~0.9) for volatility
work, as the import acceptance test does.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from backtest import pricing_nb

YEAR_DAYS = 365.0


@dataclass(frozen=True)
class Greeks:
    price: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    theta: np.ndarray  # per calendar day
    vega: np.ndarray  # per volatility point (0.01)


def _arrays(*values, n=None):
    arrs = [np.asarray(v) for v in values]
    shape = np.broadcast_shapes(*(a.shape for a in arrs))
    # broadcast_to only where needed: it costs more than the kernels' call on a day of options
    return [np.ascontiguousarray(a if a.shape == shape else np.broadcast_to(a, shape)).ravel() for a in arrs], shape


def _option_arrays(is_call, *values):
    """is_call as bool and the rest as float64, broadcast together and flattened."""
    return _arrays(np.asarray(is_call, dtype=bool), *(np.asarray(v, dtype=np.float64) for v in values))


def bs_greeks(is_call, spot, strike, t_years, rate, div_yield, sigma) -> Greeks:
    """Black-Scholes-Merton price and greeks, broadcast over all inputs. Invalid inputs give NaN."""
    (c, s, k, t, r, q, v), shape = _option_arrays(is_call, spot, strike, t_years, rate, div_yield, sigma)
    outs = [np.empty(len(s)) for _ in range(5)]
    pricing_nb.bs_greeks_array(c, s, k, t, r, q, v, *outs)
    return Greeks(*(o.reshape(shape) for o in outs))


GREEKS = ("delta", "gamma", "theta", "vega")  # the greeks fill_greeks writes, in its kernel's order


def fill_greeks(is_call, spot, strike, t_years, rate, div_yield, sigma, greeks: dict[str, np.ndarray],
                fill_all: bool = False) -> None:
    """Black-Scholes-Merton greeks at ``sigma`` written into ``greeks`` (delta, gamma, theta,
    vega: writable float64 arrays) where they are NaN, or everywhere with ``fill_all``; the
    values equal :func:`bs_greeks`'s, and rows with nothing to fill are not priced."""
    (c, s, k, t, r, q, v), _ = _option_arrays(is_call, spot, strike, t_years, rate, div_yield, sigma)
    out = [greeks[name] for name in GREEKS]
    for name, a in zip(GREEKS, out):
        if a.dtype != np.float64 or a.shape != s.shape or not a.flags.writeable:
            raise ValueError(f"greeks[{name!r}]: expected a writable float64 array of {len(s)} values")
    pricing_nb.fill_greeks_array(c, s, k, t, r, q, v, *out, fill_all)


def black76_price(is_call, forward, strike, t_years, discount, sigma) -> np.ndarray:
    """Black-76 price of European options on a forward; ``discount`` = exp(-r T)."""
    (c, f, k, t, df, v), shape = _option_arrays(is_call, forward, strike, t_years, discount, sigma)
    out = np.empty(len(f))
    pricing_nb.black_price_array(c, f, k, t, df, v, out)
    return out.reshape(shape)


def black76_implied_vol(is_call, price, forward, strike, t_years, discount) -> np.ndarray:
    """Black-76 implied volatility. NaN where the price is outside the no-arbitrage bounds
    (below the discounted forward intrinsic value, or at/above the discounted forward for calls
    or strike for puts) or an input is invalid; 0 where the price equals intrinsic value."""
    (c, p, f, k, t, df), shape = _option_arrays(is_call, price, forward, strike, t_years, discount)
    out = np.empty(len(p))
    pricing_nb.black_implied_vol_array(c, p, f, k, t, df, iv_guess_table(), out)
    return out.reshape(shape)


@functools.cache
def iv_guess_table() -> np.ndarray:
    """The implied-volatility solver's initial-guess tables (see backtest.pricing_nb), built once
    per process from the 2006 solver (~130k solves, a few tenths of a second)."""
    table = pricing_nb.build_iv_guess_table(pricing_nb.IV_TABLE_SIZE)
    table.setflags(write=False)
    return table


def forward_and_discount(spot, t_years, rate, div_yield) -> tuple[np.ndarray, np.ndarray]:
    """Forward F = S e^{(r - q) T} and discount factor e^{-r T} (continuous r and q)."""
    spot, t, r, q = (np.asarray(a, dtype=np.float64) for a in (spot, t_years, rate, div_yield))
    return spot * np.exp((r - q) * t), np.exp(-r * t)


def bs_implied_vol(is_call, price, spot, strike, t_years, rate, div_yield) -> np.ndarray:
    """Black-Scholes-Merton implied volatility (spot, continuous rate r and yield q): the
    Black-76 volatility on the forward S e^{(r - q) T}; same NaN rules as black76_implied_vol."""
    forward, discount = forward_and_discount(spot, t_years, rate, div_yield)
    return black76_implied_vol(is_call, price, forward, strike, t_years, discount)
