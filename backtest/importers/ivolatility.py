"""iVolatility "EOD Raw IV" files.

Columns (one option per row; names are matched case-insensitively)::

    symbol,exchange,date,adjusted close,option symbol,expiration,strike,call/put,style,ask,bid,
    mean price,iv,volume,open interest,stock price for iv,*,delta,vega,gamma,theta,rho

``iv`` of -1 means the vendor has no implied volatility for the row (the engine then computes
one); the greeks of such rows are taken as missing too. ``stock price for iv`` is the underlying
price the vendor's IV used; ``style`` is A/E; ``call/put`` is C/P; the trading class comes from
the OSI ``option symbol``. Vega per volatility point and theta per calendar day.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from backtest.importers import common
from backtest.importers.source import DATE, UNIQUE_TEXT, CsvLayout, ImportFileError

F64 = pa.float64()
MISSING_IV = -1.0


class IVolatilityFormat(common.CsvFormat):
    name = "ivolatility"
    description = "iVolatility EOD Raw IV (IV of -1 = missing)"
    layout = CsvLayout(
        required={
            "symbol": pa.string(), "date": DATE, "option symbol": UNIQUE_TEXT, "expiration": DATE,
            "strike": F64, "call/put": pa.string(), "ask": F64, "bid": F64, "stock price for iv": F64,
        },
        optional={
            "style": pa.string(), "iv": F64, "volume": F64, "open interest": F64,
            "delta": F64, "vega": F64, "gamma": F64, "theta": F64,
        },
        ignored=frozenset({"exchange", "adjusted close", "mean price", "*", "rho"}),
        normalise=lambda name: name.strip().lower(),
    )

    def to_chain(self, raw: pa.Table, state: common.FileState, first_line: int) -> pa.Table:
        underlying = common.clean_symbol(raw.column("symbol"))
        common.check_single_underlying(state, underlying, first_line)
        for name in ("date", "expiration"):
            common.require_values(raw.column(name), state.label, first_line, name, "a date")
        root = common.root_from_osi(raw.column("option symbol"), underlying)
        opt = lambda name: raw.column(name) if name in raw.column_names else None  # noqa: E731
        calcs = {g: opt(g) for g in ("iv", "delta", "gamma", "theta", "vega")}
        if calcs["iv"] is not None:
            missing = pc.equal(calcs["iv"], MISSING_IV)
            calcs = {g: None if c is None else pc.if_else(missing, None, c) for g, c in calcs.items()}
        style = pc.utf8_upper(pc.utf8_trim_whitespace(raw.column("style").cast(pa.string()))) \
            if "style" in raw.column_names else None
        if style is not None:
            bad = pc.invert(pc.is_in(style, value_set=pa.array(["A", "E"])))
            if pc.any(bad).as_py():
                row = pc.index(bad, True).as_py()
                raise ImportFileError(f"{state.label} line {first_line + row}: column 'style': "
                                      f"{style[row].as_py()!r} is not an exercise style (expected A or E)")
        return common.chain_table(raw.num_rows, {
            **calcs,
            "quote_date": raw.column("date"), "underlying": underlying, "root": root,
            "expiration": raw.column("expiration"), "strike": raw.column("strike"),
            "right": common.rights(raw.column("call/put"), state.label, first_line, "call/put"),
            "style": common.styles(root) if style is None else pc.coalesce(style, common.styles(root)),
            "bid": raw.column("bid"), "ask": raw.column("ask"),
            "volume": opt("volume"), "open_interest": opt("open interest"),
            "underlying_price": raw.column("stock price for iv"),
        })
