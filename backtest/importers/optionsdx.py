"""OptionsDX wide end-of-day files: a call and a put per strike side by side on one line.

Header (bracketed names, a space after each comma; values are padded the same way)::

    [QUOTE_UNIXTIME], [QUOTE_READTIME], [QUOTE_DATE], [QUOTE_TIME_HOURS], [UNDERLYING_LAST],
    [EXPIRE_DATE], [EXPIRE_UNIX], [DTE], [C_DELTA], [C_GAMMA], [C_VEGA], [C_THETA], [C_RHO],
    [C_IV], [C_VOLUME], [C_LAST], [C_SIZE], [C_BID], [C_ASK], [STRIKE], [P_BID], [P_ASK],
    [P_SIZE], [P_LAST], [P_DELTA], [P_GAMMA], [P_VEGA], [P_THETA], [P_RHO], [P_IV], [P_VOLUME],
    [STRIKE_DISTANCE], [STRIKE_DISTANCE_PCT]

Each line becomes two canonical rows (call, put). The files carry no underlying symbol and no
trading class: the underlying is the file name's prefix (``spx_eod_202101.txt`` -> SPX) and the
root equals the underlying (so SPX and SPXW quotes of one expiration cannot be told apart in this
format). Size fields such as ``"12 x 14"`` (bid size x ask size) are not part of the canonical
schema and are skipped; there is no open interest. Greeks are taken as vega per volatility point
and theta per calendar day, IV as a decimal.
"""
from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from backtest.importers import common
from backtest.importers.source import DATE, CsvLayout, ImportFileError, input_label

F64 = pa.float64()
_SIDE_FIELDS = {"BID": "bid", "ASK": "ask", "LAST": "last", "VOLUME": "volume", "IV": "iv",
                "DELTA": "delta", "GAMMA": "gamma", "THETA": "theta", "VEGA": "vega"}


def _normalise(name: str) -> str:
    return name.strip().strip("[]").strip().upper()


def underlying_from_name(path: str | Path) -> str:
    """``spx_eod_202101.txt`` -> ``SPX`` (OptionsDX names files <symbol>_eod_<yyyymm>)."""
    m = re.match(r"([A-Za-z][A-Za-z0-9.]*)_", Path(path).name)
    if not m:
        raise ImportFileError(
            f"{path}: cannot tell the underlying from the file name; OptionsDX files are named "
            "<symbol>_eod_<yyyymm>.txt (e.g. spx_eod_202101.txt)"
        )
    return m.group(1).upper()


class OptionsDxFormat(common.CsvFormat):
    name = "optionsdx"
    description = "OptionsDX wide EOD (calls and puts side by side, bracketed headers)"
    layout = CsvLayout(
        required={
            "QUOTE_DATE": DATE, "UNDERLYING_LAST": F64, "EXPIRE_DATE": DATE, "STRIKE": F64,
            "C_BID": F64, "C_ASK": F64, "P_BID": F64, "P_ASK": F64,
        },
        optional={f"{side}_{field}": F64 for side in "CP" for field in _SIDE_FIELDS if field not in ("BID", "ASK")},
        ignored=frozenset({"QUOTE_UNIXTIME", "QUOTE_READTIME", "QUOTE_TIME_HOURS", "EXPIRE_UNIX", "DTE",
                           "C_RHO", "P_RHO", "C_SIZE", "P_SIZE", "STRIKE_DISTANCE", "STRIKE_DISTANCE_PCT"}),
        normalise=_normalise,
    )

    def file_state(self, path: str | Path, member: str | None) -> common.FileState:
        return common.FileState(input_label(path, member), underlying_from_name(member or path))

    def to_chain(self, raw: pa.Table, state: common.FileState, first_line: int) -> pa.Table:
        for name in ("QUOTE_DATE", "EXPIRE_DATE"):
            common.require_values(raw.column(name), state.label, first_line, name, "a date")
        n = raw.num_rows
        symbol = pa.array([state.underlying] * n, pa.string())
        sides = []
        for side, right in (("C", "C"), ("P", "P")):
            columns = {
                canonical: raw.column(f"{side}_{field}") if f"{side}_{field}" in raw.column_names else None
                for field, canonical in _SIDE_FIELDS.items()
            }
            sides.append(common.chain_table(n, {
                **columns,
                "quote_date": raw.column("QUOTE_DATE"), "underlying": symbol, "root": symbol,
                "expiration": raw.column("EXPIRE_DATE"), "strike": raw.column("STRIKE"),
                "right": pa.array([right] * n, pa.string()), "style": common.styles(symbol),
                "underlying_price": raw.column("UNDERLYING_LAST"),
            }))
        return pa.concat_tables(sides)
