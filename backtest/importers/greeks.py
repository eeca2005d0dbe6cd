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
    return table.column(name).fill_null(np.nan).to_numpy()


def add_greeks(chain: pa.Table, rates: RateSchedule, recompute: bool = False) -> pa.Table:
    if chain.num_rows == 0:
        return chain
    iv_col = chain.column("iv")
    if pc.any(pc.less_equal(iv_col, 0.0)).as_py():  # a vendor IV of 0 (or -1...) is no IV
        iv_col = pc.if_else(pc.greater(iv_col, 0.0), iv_col, None)
        chain = chain.set_column(chain.schema.get_field_index("iv"), "iv", iv_col)
    names = ("iv", *GREEKS)
    if recompute:
        todo = np.ones(chain.num_rows, dtype=bool)
    else:
        todo = np.zeros(chain.num_rows, dtype=bool)
        for name in names:
            if chain.column(name).null_count:
                todo |= chain.column(name).is_null().to_numpy(zero_copy_only=False)
        if not todo.any():
            return chain
    rows = chain.filter(pa.array(todo)) if not todo.all() else chain
    quote = rows.column("quote_date").cast(pa.int32()).to_numpy()
    t = (rows.column("expiration").cast(pa.int32()).to_numpy() - quote) / pricing.YEAR_DAYS
    spot, strike = _floats(rows, "underlying_price"), _floats(rows, "strike")
    is_call = pc.equal(rows.column("right"), "C").to_numpy(zero_copy_only=False)
    rate, div = rates.lookup(quote)
    vendor_iv = _floats(rows, "iv")
    iv = vendor_iv.copy()
    engine = np.ones(len(iv), dtype=bool) if recompute else np.isnan(vendor_iv)
    if engine.any():
        mid = 0.5 * (_floats(rows, "bid") + _floats(rows, "ask"))
        iv[engine] = pricing.bs_implied_vol(is_call[engine], mid[engine], spot[engine], strike[engine],
                                            t[engine], rate[engine], div[engine])
    g = pricing.bs_greeks(is_call, spot, strike, t, rate, div, iv)
    positions = np.flatnonzero(todo)
    for name, values in {"iv": iv, "delta": g.delta, "gamma": g.gamma, "theta": g.theta, "vega": g.vega}.items():
        old = _floats(chain, name)
        new = old.copy()
        new[positions] = values if recompute else np.where(np.isnan(old[positions]), values, old[positions])
        # NaN -> null: where there is no number to give (e.g. expiration day, price out of bounds)
        chain = chain.set_column(chain.schema.get_field_index(name), name, pa.array(new, pa.float64(), from_pandas=True))
    return chain
