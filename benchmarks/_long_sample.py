"""A minimal reader of the real "long" CSV samples (SPX 2019, SPY 2021) into CHAIN_SCHEMA rows.

Only for the validation tests and benchmark: it maps the samples' columns and nothing more
(the full importer, with its error handling and IV engine, lives in backtest/importers).
"""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from backtest.schema import CHAIN_SCHEMA, conform
from discovery.cli.bench import SuiteUnavailable

SHARED = Path(os.environ.get("OSD_SHARED", Path(__file__).resolve().parents[2] / "shared"))
SPX_SAMPLE_DIR = SHARED / "data" / "real" / "spx-2019q2-cboe-delayed"

_DATE = pa.timestamp("s")
_COLUMN_TYPES = {
    "underlying": pa.string(), "underlying_last": pa.float64(), "optionroot": pa.string(),
    "type": pa.string(), "expiration": _DATE, "quotedate": _DATE, "strike": pa.float64(),
    "last": pa.float64(), "bid": pa.float64(), "ask": pa.float64(), "volume": pa.int64(),
    "openinterest": pa.int64(), "impliedvol": pa.float64(), "delta": pa.float64(), "gamma": pa.float64(),
    "theta": pa.float64(), "vega": pa.float64(),  # only in the SPY sample
}
_EUROPEAN_ROOTS = {"SPX", "SPXW"}


def spx_sample_files() -> list[Path]:
    """The SPX 2019 sample's daily files, in date order. Where the shared data are absent (a
    container build, a checkout without ../shared) the suite cannot run: SuiteUnavailable."""
    files = sorted(SPX_SAMPLE_DIR.glob("SPX_*.csv.gz"))
    if not files:
        raise SuiteUnavailable(f"SPX sample not found in {SPX_SAMPLE_DIR} (set OSD_SHARED)")
    return files


def read_long_sample(path: str | Path) -> pa.Table:
    """One file of a sample as a CHAIN_SCHEMA table (trading class from optionroot; SPX/SPXW
    European, everything else American)."""
    raw = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types=_COLUMN_TYPES, timestamp_parsers=["%m/%d/%Y", "%Y-%m-%d"],
            include_columns=list(_COLUMN_TYPES), include_missing_columns=True,
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
        "style": pc.if_else(pc.is_in(root, pa.array(sorted(_EUROPEAN_ROOTS))), "E", "A"),
        "bid": raw["bid"],
        "ask": raw["ask"],
        "last": raw["last"],
        "volume": raw["volume"],
        "open_interest": raw["openinterest"],
        "iv": raw["impliedvol"],
        "delta": raw["delta"],
        "gamma": raw["gamma"],
        "theta": raw["theta"],
        "vega": raw["vega"],
        "underlying_price": raw["underlying_last"],
    })
    return conform(table, CHAIN_SCHEMA)
