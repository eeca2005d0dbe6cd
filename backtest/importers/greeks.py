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

from backtest import pricing
from backtest.importers.common import nan_to_null
from backtest.importers.rates import RateSchedule
from backtest.store import date_days, letter_codes


def _floats(table: pa.Table, name: str) -> np.ndarray:
    """A float column as numpy, null -> NaN (read-only where Arrow could lend its buffer)."""
    return table.column(name).to_numpy()


def _writable(values: np.ndarray) -> np.ndarray:
    return values if values.flags.writeable else values.copy()


def add_greeks(chain: pa.Table, rates: RateSchedule, recompute: bool = False) -> pa.Table:
    if chain.num_rows == 0:
        return chain
    vendor_iv = _floats(chain, "iv")
    with np.errstate(invalid="ignore"):
        no_iv = ~(vendor_iv > 0.0)  # a vendor IV of 0 (or -1...) is no IV
    greeks = {name: _floats(chain, name) for name in pricing.GREEKS}
    # the columns that change: a vendor column is kept as it is where it has every value
    changed = [name for name, values in greeks.items() if recompute or np.isnan(values).any()]
    if recompute or no_iv.any():
        changed.insert(0, "iv")
    if not changed:
        return chain
    quote = date_days(chain.column("quote_date"))
    t = (date_days(chain.column("expiration")) - quote) / pricing.YEAR_DAYS
    spot, strike = _floats(chain, "underlying_price"), _floats(chain, "strike")
    is_call = letter_codes(chain.column("right"), "C") == 0
    rate, div = rates.lookup(quote)
    engine = np.ones(len(quote), dtype=bool) if recompute else no_iv
    iv = vendor_iv
    if engine.any():
        iv = np.array(vendor_iv)
        mid = 0.5 * (_floats(chain, "bid")[engine] + _floats(chain, "ask")[engine])
        iv[engine] = pricing.bs_implied_vol(is_call[engine], mid, spot[engine], strike[engine], t[engine],
                                            rate[engine], div[engine])
    greeks = {name: _writable(values) for name, values in greeks.items()}
    pricing.fill_greeks(is_call, spot, strike, t, rate, div, iv, greeks, fill_all=recompute)
    for name in changed:
        # NaN -> null: where there is no number to give (e.g. expiration day, price out of bounds)
        values = iv if name == "iv" else greeks[name]
        chain = chain.set_column(chain.schema.get_field_index(name), name, nan_to_null(values))
    return chain
