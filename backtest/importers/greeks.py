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
    """A float column as numpy, null -> NaN (read-only where Arrow could lend its buffer)."""
    return table.column(name).to_numpy()


def _days(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).cast(pa.int32()).to_numpy()


def add_greeks(chain: pa.Table, rates: RateSchedule, recompute: bool = False) -> pa.Table:
    if chain.num_rows == 0:
        return chain
    vendor = {name: _floats(chain, name) for name in ("iv", *GREEKS)}
    with np.errstate(invalid="ignore"):
        no_iv = ~(vendor["iv"] > 0.0)  # a vendor IV of 0 (or -1...) is no IV
    if no_iv.any():
        vendor["iv"] = np.where(no_iv, np.nan, vendor["iv"])
    missing = {name: no_iv if name == "iv" else np.isnan(v) for name, v in vendor.items()}
    if recompute:
        todo = slice(None)
    else:
        rows = np.flatnonzero(np.logical_or.reduce(list(missing.values())))
        if not len(rows):
            return chain
        # all rows (e.g. a vendor without theta and vega): slices instead of gathers
        todo = slice(None) if len(rows) == chain.num_rows else rows
    quote = _days(chain, "quote_date")[todo]
    t = (_days(chain, "expiration")[todo] - quote) / pricing.YEAR_DAYS
    spot, strike = _floats(chain, "underlying_price")[todo], _floats(chain, "strike")[todo]
    is_call = pc.equal(chain.column("right"), "C").to_numpy()[todo]
    rate, div = rates.lookup(quote)
    iv = np.array(vendor["iv"][todo])
    engine = np.ones(len(iv), dtype=bool) if recompute else np.isnan(iv)
    if engine.any():
        mid = 0.5 * (_floats(chain, "bid")[todo] + _floats(chain, "ask")[todo])
        iv[engine] = pricing.bs_implied_vol(is_call[engine], mid[engine], spot[engine], strike[engine],
                                            t[engine], rate[engine], div[engine])
    g = pricing.bs_greeks(is_call, spot, strike, t, rate, div, iv)
    for name, values in {"iv": iv, "delta": g.delta, "gamma": g.gamma, "theta": g.theta, "vega": g.vega}.items():
        if not recompute and not missing[name].any():
            continue  # the vendor's column as it is
        column = np.array(vendor[name])
        column[todo] = values if recompute else np.where(missing[name][todo], values, column[todo])
        # NaN -> null: where there is no number to give (e.g. expiration day, price out of bounds)
        chain = chain.set_column(chain.schema.get_field_index(name), name, pa.array(column, pa.float64(), from_pandas=True))
    return chain
