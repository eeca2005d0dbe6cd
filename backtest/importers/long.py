"""The "long" HistoricalOptionData / Delta Neutral CSV: one option per row.

Header (lower-case, case-insensitive here)::

    underlying,underlying_last,exchange,optionroot,type,expiration,quotedate,strike,last,net,
    bid,ask,volume,openinterest,impliedvol,delta,gamma[,theta,vega][,optionalias,...]

Dates are m/d/Y or ISO (detected per file and then enforced), ``type`` is call/put, implied
volatility is a decimal. The trading class comes from ``optionroot`` (``SPXW190426C00800000`` is
SPXW), so SPX and SPXW contracts with the same expiration stay distinct. ``underlying_last`` is
the underlying price of the snapshot; one underlying bar per quote date is derived from it.
Theta is per calendar day and vega per volatility point, as in the vendor's files.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from collections.abc import Iterator
from pathlib import Path

from backtest.importers import common
from backtest.importers.fixed import FixedBlock, FixedColumns, fixed_blocks
from backtest.importers.source import DATE, UNIQUE_TEXT, CsvLayout

F64 = pa.float64()


class LongFormat(common.CsvFormat):
    name = "long"
    description = "HistoricalOptionData / Delta Neutral long CSV (one option per row)"
    layout = CsvLayout(
        required={
            "underlying": pa.string(), "underlying_last": F64, "optionroot": UNIQUE_TEXT, "type": pa.string(),
            "expiration": DATE, "quotedate": DATE, "strike": F64, "bid": F64, "ask": F64,
        },
        optional={
            "last": F64, "volume": F64, "openinterest": F64, "impliedvol": F64,
            "delta": F64, "gamma": F64, "theta": F64, "vega": F64,
        },
        ignored=frozenset({"exchange", "net", "optionalias", "optionext", "ivbid", "ivask", "ivmean"}),
        normalise=lambda name: name.strip().lower(),
    )

    # what the numba reader (backtest.importers.fixed) converts; the other known columns are not imported
    fixed = FixedColumns(
        numbers=("underlying_last", "strike", "bid", "ask", "last", "volume", "openinterest", "impliedvol",
                 "delta", "gamma", "theta", "vega"),
        dates=("expiration", "quotedate"), underlying="underlying", osi_symbol="optionroot", right="type")

    def chunks(self, path: str | Path, member: str | None = None) -> Iterator[common.Chunk]:
        state = self.file_state(path, member)
        for block, line in fixed_blocks(path, member, self.layout, self.fixed, f"--format {self.name}", state):
            if isinstance(block, FixedBlock):
                yield common.Chunk(self._fixed_chain(block), line, block.rows)
            else:
                yield common.Chunk(self.to_chain(block, state, line), line, block.num_rows)

    def _fixed_chain(self, block: FixedBlock) -> pa.Table:
        number, date = block.numbers.get, block.dates.get
        return common.chain_table(block.rows, {
            "quote_date": date("quotedate"), "underlying": pa.DictionaryArray.from_arrays(
                np.zeros(block.rows, np.int32), pa.array([block.underlying])),
            "root": block.root, "expiration": date("expiration"), "strike": number("strike"),
            "right": block.right, "style": common.styles(block.root),
            "bid": number("bid"), "ask": number("ask"), "last": number("last"),
            "volume": number("volume"), "open_interest": number("openinterest"), "iv": number("impliedvol"),
            "delta": number("delta"), "gamma": number("gamma"), "theta": number("theta"), "vega": number("vega"),
            "underlying_price": number("underlying_last"),
        })

    def to_chain(self, raw: pa.Table, state: common.FileState, first_line: int) -> pa.Table:
        underlying = common.clean_symbol(raw.column("underlying"))
        common.check_single_underlying(state, underlying, first_line)
        for name in ("quotedate", "expiration"):
            common.require_values(raw.column(name), state.label, first_line, name, "a date")
        root = common.root_from_osi(raw.column("optionroot"), underlying)
        col = raw.column
        opt = lambda name: col(name) if name in raw.column_names else None  # noqa: E731
        return common.chain_table(raw.num_rows, {
            "quote_date": col("quotedate"), "underlying": underlying, "root": root,
            "expiration": col("expiration"), "strike": col("strike"),
            "right": common.rights(col("type"), state.label, first_line, "type"), "style": common.styles(root),
            "bid": col("bid"), "ask": col("ask"), "last": opt("last"),
            "volume": opt("volume"), "open_interest": opt("openinterest"), "iv": opt("impliedvol"),
            "delta": opt("delta"), "gamma": opt("gamma"), "theta": opt("theta"), "vega": opt("vega"),
            "underlying_price": col("underlying_last"),
        })
