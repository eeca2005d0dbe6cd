"""Any CSV or Parquet chain file, described by a YAML column mapping.

Example mapping (keys under ``columns`` are canonical names, values the file's column names)::

    file_type: csv          # csv or parquet; default: from the file extension
    underlying: SPY         # the underlying when the file has no column for it
    style: A                # A or E for every row; default: European for index classes (SPX...), else A
    date_format: "%Y-%m-%d" # default: detected from the first value of each date column
    iv_scale: 0.01          # multiply the file's IV (0.01 when it is in percent); default 1
    rights: {C: C, P: P}    # file value -> C/P; default accepts call/put/C/P in any case
    columns:
      quote_date: QuoteDate
      expiration: Expiry
      strike: Strike
      right: PutCall
      bid: Bid
      ask: Ask
      underlying_price: Spot
      underlying: Symbol        # optional when `underlying` is given
      option_symbol: OptionSym  # optional: OSI symbol, for the trading class
      root: Class               # optional: the trading class itself
      last: Last                # optional, like volume, open_interest, iv, delta, gamma, theta, vega

Columns the mapping does not name are ignored. Greeks are taken as theta per calendar day and
vega per volatility point. The mapping is validated (pydantic): an unknown key, a missing
required column or a bad value is an error naming the key.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from backtest.errors import UserError
from backtest.importers import common
from backtest.importers.source import (
    DATE,
    UNIQUE_TEXT,
    CsvLayout,
    ImportFileError,
    detect_date_format,
    input_label,
    parse_date_column,
)

F64 = pa.float64()
PARQUET_BATCH_ROWS = 256_000
_OPTIONAL_NUMBERS = ("last", "volume", "open_interest", "iv", "delta", "gamma", "theta", "vega")


class ColumnMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quote_date: str
    expiration: str
    strike: str
    right: str
    bid: str
    ask: str
    underlying_price: str
    underlying: str | None = None
    option_symbol: str | None = None
    root: str | None = None
    last: str | None = None
    volume: str | None = None
    open_interest: str | None = None
    iv: str | None = None
    delta: str | None = None
    gamma: str | None = None
    theta: str | None = None
    vega: str | None = None


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    columns: ColumnMapping
    file_type: Literal["csv", "parquet"] | None = None
    underlying: str | None = None
    style: Literal["A", "E"] | None = None
    date_format: str | None = None
    iv_scale: float = 1.0
    rights: dict[str, Literal["C", "P"]] | None = None

    @field_validator("underlying")
    @classmethod
    def _symbol(cls, value: str | None) -> str | None:
        return value.strip().lstrip("^").upper() if value else value

    @model_validator(mode="after")
    def _underlying_given(self) -> "Mapping":
        if self.underlying is None and self.columns.underlying is None:
            raise ValueError("give either `underlying: SYMBOL` or `columns: {underlying: COLUMN}`")
        return self

    @classmethod
    def load(cls, path: str | Path) -> "Mapping":
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise UserError(f"{path}: cannot read the mapping ({exc})") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'mapping'}: {e['msg']}" for e in exc.errors())
            raise UserError(f"{path}: invalid mapping: {problems}") from None


class GenericFormat(common.CsvFormat):
    name = "generic"
    description = "any CSV/Parquet with a YAML column mapping (--mapping)"

    def __init__(self, mapping: Mapping):
        self.mapping = mapping
        cols = mapping.columns
        types = {
            "quote_date": DATE, "expiration": DATE, "strike": F64, "right": pa.string(), "bid": F64,
            "ask": F64, "underlying_price": F64, "underlying": pa.string(), "option_symbol": UNIQUE_TEXT,
            "root": pa.string(), **{n: F64 for n in _OPTIONAL_NUMBERS},
        }
        required = {"quote_date", "expiration", "strike", "right", "bid", "ask", "underlying_price"}
        self.vendor = {k: v for k, v in cols.model_dump().items() if v is not None}
        self.layout = CsvLayout(
            required={self.vendor[k]: types[k] for k in self.vendor if k in required},
            optional={self.vendor[k]: types[k] for k in self.vendor if k not in required},
            normalise=str.strip,
            other_columns_allowed=True,
            date_format=mapping.date_format,
        )

    def file_state(self, path: str | Path, member: str | None) -> common.FileState:
        return common.FileState(input_label(path, member), self.mapping.underlying)

    def chunks(self, path: str | Path, member: str | None = None) -> Iterator[common.Chunk]:
        name = member or str(path)
        kind = self.mapping.file_type or ("parquet" if name.endswith((".parquet", ".pq")) else "csv")
        if kind == "csv":
            yield from super().chunks(path, member)
            return
        state = self.file_state(path, member)
        if member is not None:
            raise ImportFileError(f"{state.label}: Parquet inside a zip archive is not supported; unzip it first")
        for raw, row in self._parquet_batches(Path(path), state.label):
            yield common.Chunk(self.to_chain(raw, state, row), row, raw.num_rows)

    def _parquet_batches(self, path: Path, label: str) -> Iterator[tuple[pa.Table, int]]:
        try:
            pfile = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ImportFileError(f"{label}: not a readable Parquet file ({exc})") from None
        names = pfile.schema_arrow.names
        missing = [c for c in self.layout.required if c not in names]
        if missing:
            raise ImportFileError(f"{label}: missing column(s) {', '.join(map(repr, missing))} named by the mapping")
        wanted = [c for c in {**self.layout.required, **self.layout.optional} if c in names]
        types = {**self.layout.required, **self.layout.optional}
        formats: dict[str, str] = {}
        row = 1
        for batch in pfile.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=wanted):
            table = pa.Table.from_batches([batch])
            for c in wanted:
                col = table.column(c).combine_chunks()
                if types[c] == DATE:
                    if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
                        col = col.cast(pa.date32())
                    else:
                        col = col.cast(pa.string())
                        if c not in formats and col.null_count < len(col):
                            first = col.drop_null()[0].as_py()
                            formats[c] = self.mapping.date_format or detect_date_format(first, label, c, row)
                        col = parse_date_column(col, formats.get(c, "%Y-%m-%d"), label, row, c)
                elif types[c] == F64:
                    try:
                        col = col.cast(F64)
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                        raise ImportFileError(f"{label}: column {c!r}: {exc}; expected numbers") from None
                table = table.set_column(table.column_names.index(c), c, col)
            yield table, row
            row += batch.num_rows

    def to_chain(self, raw: pa.Table, state: common.FileState, first_line: int) -> pa.Table:
        v, m = self.vendor, self.mapping
        col = lambda key: raw.column(v[key]) if key in v and v[key] in raw.column_names else None  # noqa: E731
        n = raw.num_rows
        if "underlying" in v:
            underlying = common.clean_symbol(raw.column(v["underlying"]))
        else:
            underlying = pa.array([m.underlying] * n, pa.string())
        common.check_single_underlying(state, underlying, first_line)
        for key in ("quote_date", "expiration"):
            common.require_values(col(key), state.label, first_line, v[key], "a date")
        if "root" in v:
            root = pc.coalesce(common.clean_symbol(col("root")), underlying)
        elif "option_symbol" in v:
            root = common.root_from_osi(col("option_symbol"), underlying)
        else:
            root = underlying
        if m.rights:
            right_text = pc.utf8_trim_whitespace(col("right").cast(pa.string()))
            idx = pc.index_in(right_text, value_set=pa.array(list(m.rights)))
            if idx.null_count:
                row = pc.index(pc.is_null(idx), True).as_py()
                raise ImportFileError(f"{state.label} line {first_line + row}: column {v['right']!r}: "
                                      f"{right_text[row].as_py()!r} is not one of the mapping's rights {list(m.rights)}")
            right = pc.take(pa.array(list(m.rights.values())), idx)
        else:
            right = common.rights(col("right"), state.label, first_line, v["right"])
        iv = col("iv")
        if iv is not None and m.iv_scale != 1.0:
            iv = pc.multiply(iv, m.iv_scale)
        return common.chain_table(n, {
            **{k: col(k) for k in _OPTIONAL_NUMBERS}, "iv": iv,
            "quote_date": col("quote_date"), "underlying": underlying, "root": root,
            "expiration": col("expiration"), "strike": col("strike"), "right": right,
            "style": pa.array([m.style] * n, pa.string()) if m.style else common.styles(root),
            "bid": col("bid"), "ask": col("ask"), "underlying_price": col("underlying_price"),
        })
