"""Cboe DataShop "Option EOD Summary" files.

Columns (one option per row)::

    underlying_symbol,quote_date,root,expiration,strike,option_type,open,high,low,close,
    trade_volume,bid_size_1545,bid_1545,ask_size_1545,ask_1545,underlying_bid_1545,
    underlying_ask_1545,implied_underlying_price_1545,active_underlying_price_1545,
    implied_volatility_1545,delta_1545,gamma_1545,theta_1545,vega_1545,rho_1545,bid_size_eod,
    bid_eod,ask_size_eod,ask_eod,underlying_bid_eod,underlying_ask_eod,vwap,open_interest,
    delivery_code

Two snapshots per row: 15:45 ET (quotes with Cboe's IV and greeks, computed at that time) and
end of day (16:15 option quotes, no calculations). The 15:45 snapshot is the default
(``quotes="1545"``) because its IV and greeks belong to its quotes; its underlying price is
``active_underlying_price_1545`` (the mid of the 15:45 underlying bid/ask where that is empty).
With ``quotes="eod"`` the EOD bid/ask and the mid of the EOD underlying bid/ask are used and IV
and greeks are left to the engine (pairing them with the 15:45 calculations would mix two times).
``underlying_symbol`` loses Cboe's index caret (^SPX -> SPX); ``root`` is the trading class;
``close`` is the last trade, ``trade_volume`` the volume. Cboe's vega is per volatility point
and theta per calendar day.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from backtest.importers import common
from backtest.importers.source import DATE, CsvLayout

F64 = pa.float64()
SNAPSHOTS = ("1545", "eod")


def _mid(raw: pa.Table, bid: str, ask: str) -> pa.Array:
    return pc.divide(pc.add(raw.column(bid), raw.column(ask)), 2.0)


class CboeFormat(common.CsvFormat):
    name = "cboe"
    description = "Cboe DataShop Option EOD Summary (15:45 or EOD quotes)"
    layout = CsvLayout(
        required={
            "underlying_symbol": pa.string(), "quote_date": DATE, "root": pa.string(), "expiration": DATE,
            "strike": F64, "option_type": pa.string(), "bid_1545": F64, "ask_1545": F64,
            "underlying_bid_1545": F64, "underlying_ask_1545": F64, "bid_eod": F64, "ask_eod": F64,
            "underlying_bid_eod": F64, "underlying_ask_eod": F64,
        },
        optional={
            "close": F64, "trade_volume": F64, "open_interest": F64, "active_underlying_price_1545": F64,
            "implied_volatility_1545": F64, "delta_1545": F64, "gamma_1545": F64, "theta_1545": F64,
            "vega_1545": F64,
        },
        ignored=frozenset({"open", "high", "low", "bid_size_1545", "ask_size_1545", "implied_underlying_price_1545",
                           "rho_1545", "bid_size_eod", "ask_size_eod", "vwap", "delivery_code"}),
        normalise=lambda name: name.strip().lower(),
    )

    def __init__(self, quotes: str = "1545"):
        if quotes not in SNAPSHOTS:
            raise ValueError(f"quotes={quotes!r}, expected one of {SNAPSHOTS}")
        self.quotes = quotes

    def to_chain(self, raw: pa.Table, state: common.FileState, first_line: int) -> pa.Table:
        underlying = common.clean_symbol(raw.column("underlying_symbol"))
        common.check_single_underlying(state, underlying, first_line)
        for name in ("quote_date", "expiration"):
            common.require_values(raw.column(name), state.label, first_line, name, "a date")
        root = pc.coalesce(common.clean_symbol(raw.column("root")), underlying)
        opt = lambda name: raw.column(name) if name in raw.column_names else None  # noqa: E731
        snap = self.quotes
        if snap == "1545":
            spot = _mid(raw, "underlying_bid_1545", "underlying_ask_1545")
            if "active_underlying_price_1545" in raw.column_names:
                spot = pc.coalesce(raw.column("active_underlying_price_1545"), spot)
            calcs = {g: opt(f"{g}_1545") for g in ("delta", "gamma", "theta", "vega")}
            calcs["iv"] = opt("implied_volatility_1545")
        else:
            spot, calcs = _mid(raw, "underlying_bid_eod", "underlying_ask_eod"), {}
        return common.chain_table(raw.num_rows, {
            **calcs,
            "quote_date": raw.column("quote_date"), "underlying": underlying, "root": root,
            "expiration": raw.column("expiration"), "strike": raw.column("strike"),
            "right": common.rights(raw.column("option_type"), state.label, first_line, "option_type"),
            "style": common.styles(root), "bid": raw.column(f"bid_{snap}"), "ask": raw.column(f"ask_{snap}"),
            "last": opt("close"), "volume": opt("trade_volume"), "open_interest": opt("open_interest"),
            "underlying_price": spot,
        })
