"""Filling in (or recomputing) implied volatility and greeks on canonical chain rows.

The volatility of a row is the vendor's where it has a positive one (0 or below counts as
missing), else the engine's implied
volatility of the mid price; ``recompute=True`` always uses the engine's. Greeks the vendor
left empty (or all of them with ``recompute``) are computed at that volatility with
Black-Scholes-Merton (see backtest.pricing for American-style options). Time to expiry is
calendar days / 365 from the quote date; an option on its expiration day gets no greeks.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from backtest import pricing
from backtest.importers.rates import RateSchedule

GREEKS = ("delta", "gamma", "theta", "vega")


def _floats(table: pa.Table, name: str) -> np.ndarray:
    """A float column as a writable numpy array, null -> NaN."""
    return np.array(table.column(name).fill_null(np.nan).to_numpy(), dtype=np.float64)


def _days(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).cast(pa.int32()).to_numpy()


def add_greeks(chain: pa.Table, rates: RateSchedule, recompute: bool = False) -> pa.Table:
    if chain.num_rows == 0:
        return chain
    columns = {name: _floats(chain, name) for name in ("iv", *GREEKS)}
    with np.errstate(invalid="ignore"):
        columns["iv"][~(columns["iv"] > 0.0)] = np.nan  # a vendor IV of 0 (or -1...) is no IV
    if recompute:
        todo = np.arange(chain.num_rows)
    else:
        todo = np.flatnonzero(np.logical_or.reduce([np.isnan(v) for v in columns.values()]))
        if not len(todo):
            return chain
    quote = _days(chain, "quote_date")[todo]
    t = (_days(chain, "expiration")[todo] - quote) / pricing.YEAR_DAYS
    spot, strike = _floats(chain, "underlying_price")[todo], _floats(chain, "strike")[todo]
    is_call = pc.equal(chain.column("right"), "C").to_numpy()[todo]
    rate, div = rates.lookup(quote)
    iv = columns["iv"][todo]
    engine = np.ones(len(iv), dtype=bool) if recompute else np.isnan(iv)
    if engine.any():
        mid = 0.5 * (_floats(chain, "bid")[todo] + _floats(chain, "ask")[todo])
        iv[engine] = pricing.bs_implied_vol(is_call[engine], mid[engine], spot[engine], strike[engine],
                                            t[engine], rate[engine], div[engine])
    g = pricing.bs_greeks(is_call, spot, strike, t, rate, div, iv)
    for name, values in {"iv": iv, "delta": g.delta, "gamma": g.gamma, "theta": g.theta, "vega": g.vega}.items():
        column = columns[name]
        column[todo] = values if recompute else np.where(np.isnan(column[todo]), values, column[todo])
        # NaN -> null: where there is no number to give (e.g. expiration day, price out of bounds)
        chain = chain.set_column(chain.schema.get_field_index(name), name, pa.array(column, pa.float64(), from_pandas=True))
    return chain
