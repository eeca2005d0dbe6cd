"""A minimal reader of the real SPX 2019 sample ("long" CSV) into CHAIN_SCHEMA rows.

Only for the validation tests and benchmark: it maps the sample's columns and nothing more
(the full importer, with its error handling and IV engine, lives in backtest/importers).
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from backtest.schema import CHAIN_SCHEMA, conform

_DATE = pa.timestamp("s")
_COLUMN_TYPES = {
    "underlying": pa.string(), "underlying_last": pa.float64(), "optionroot": pa.string(),
    "type": pa.string(), "expiration": _DATE, "quotedate": _DATE, "strike": pa.float64(),
    "last": pa.float64(), "bid": pa.float64(), "ask": pa.float64(), "volume": pa.int64(),
    "openinterest": pa.int64(), "impliedvol": pa.float64(), "delta": pa.float64(), "gamma": pa.float64(),
}


def read_spx_long(path: str | Path) -> pa.Table:
    """One daily file of the sample as a CHAIN_SCHEMA table (trading class from optionroot)."""
    raw = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types=_COLUMN_TYPES, timestamp_parsers=["%m/%d/%Y"], include_columns=list(_COLUMN_TYPES)
        ),
    )
    # optionroot is ROOT + YYMMDD + C/P + strike*1000 (8 digits): the root is what precedes the last 15
    option_root = raw["optionroot"]
    root = pc.utf8_slice_codeunits(option_root, 0, stop=-15)
    right = pc.if_else(pc.equal(raw["type"], "call"), "C", "P")
    table = pa.table({
        "quote_date": raw["quotedate"].cast(pa.date32()),
        "underlying": raw["underlying"],
        "root": root,
        "expiration": raw["expiration"].cast(pa.date32()),
        "strike": raw["strike"],
        "right": right,
        "style": pa.repeat("E", raw.num_rows).cast(pa.string()) if raw.num_rows else pa.array([], pa.string()),
        "bid": raw["bid"],
        "ask": raw["ask"],
        "last": raw["last"],
        "volume": raw["volume"],
        "open_interest": raw["openinterest"],
        "iv": raw["impliedvol"],
        "delta": raw["delta"],
        "gamma": raw["gamma"],
        "underlying_price": raw["underlying_last"],
    })
    return conform(table, CHAIN_SCHEMA)
