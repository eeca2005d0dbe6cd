"""Typed numpy API over the pricing kernels in :mod:`backtest.pricing_nb`."""
from __future__ import annotations

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
    return [np.ascontiguousarray(np.broadcast_to(a, shape)).ravel() for a in arrs], shape


def bs_greeks(is_call, spot, strike, t_years, rate, div_yield, sigma) -> Greeks:
    """Black-Scholes-Merton price and greeks, broadcast over all inputs. Invalid inputs give NaN."""
    (c, s, k, t, r, q, v), shape = _arrays(
        np.asarray(is_call, dtype=bool),
        np.asarray(spot, dtype=np.float64),
        np.asarray(strike, dtype=np.float64),
        np.asarray(t_years, dtype=np.float64),
        np.asarray(rate, dtype=np.float64),
        np.asarray(div_yield, dtype=np.float64),
        np.asarray(sigma, dtype=np.float64),
    )
    outs = [np.empty(len(s)) for _ in range(5)]
    pricing_nb.bs_greeks_array(c, s, k, t, r, q, v, *outs)
    return Greeks(*(o.reshape(shape) for o in outs))
