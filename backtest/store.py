"""The canonical option-chain store (DESIGN §3.1): layout, atomic writing and columnar reading.

Layout::

    DATASET/dataset.json
    DATASET/chains/underlying=SPY/year=2021/<part>.parquet
    DATASET/underlyings/underlying=SPY/<part>.parquet
    DATASET/indices/name=VIX/<part>.parquet
    DATASET/quarantine/<part>.parquet
    DATASET/regimes/underlying=SPY/<part>.parquet   date, regime (e.g. calm / stressed)

Writers never leave partial work behind: a new dataset is assembled in a hidden sibling
directory and renamed into place on success; single files are written under a temporary name
and renamed. Readers accept local paths or any pyarrow filesystem URI (``s3://…``).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import uuid
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from backtest.errors import UserError
from backtest.schema import (
    BAR_SCHEMA,
    CHAIN_SCHEMA,
    CHAIN_SORT_KEYS,
    INDEX_SCHEMA,
    QUARANTINE_SCHEMA,
    REGIME_SCHEMA,
    SCHEMA_VERSION,
    conform,
)

DATASET_JSON = "dataset.json"
_EPOCH = dt.date(1970, 1, 1)


class StoreError(UserError):
    """A dataset that cannot be read or written as asked; the message names path and cause."""


def to_date(value: str | dt.date | None, what: str = "date") -> dt.date | None:
    """Parse an ISO date (YYYY-MM-DD) with an error that names the bad value."""
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise StoreError(f"{what}: {value!r} is not a valid date, expected YYYY-MM-DD") from None


def date_to_days(d: dt.date) -> int:
    return (d - _EPOCH).days


def days_to_date(days: int) -> dt.date:
    return _EPOCH + dt.timedelta(days=int(days))


# --------------------------------------------------------------------------- writing


def atomic_write_table(table: pa.Table, path: str | os.PathLike) -> None:
    """Write a Parquet file under a temporary name, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_json(obj: Any, path: str | os.PathLike) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# Dictionary-encode only the low-cardinality string columns: trying it on float columns (prices,
# greeks) costs more than half of the write time and makes files larger.
CHAIN_DICTIONARY_COLUMNS = ["underlying", "root", "right", "style"]
# Row-group statistics only where readers filter (dates, strikes); on prices and greeks they
# cost a quarter of the write time and prune nothing.
CHAIN_STATISTICS_COLUMNS = ["quote_date", "underlying", "root", "expiration", "strike", "right"]


def letter_codes(col: pa.ChunkedArray | pa.Array, letters: str) -> np.ndarray:
    """Per row of a string column, the index of its value among the one-letter values
    `letters` (int8), -1 for any other value or null. Columns of one-byte strings (rights,
    styles) are read straight from their bytes: ~10x faster than comparing with Arrow kernels."""
    if isinstance(col, pa.ChunkedArray):
        col = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    if not len(col):
        return np.zeros(0, np.int8)
    if pa.types.is_string(col.type) and col.null_count == 0:
        _, offset_buffer, data = col.buffers()
        offsets = np.frombuffer(offset_buffer, np.int32, len(col) + 1, col.offset * 4)
        if offsets[-1] - offsets[0] == len(col) and (offsets[1:] > offsets[:-1]).all():  # all one byte
            table = np.full(256, -1, np.int8)
            table[np.frombuffer(letters.encode("ascii"), np.uint8)] = np.arange(len(letters))
            return table[np.frombuffer(data, np.uint8, len(col), offsets[0])]
    found = pc.index_in(col.cast(pa.string()), value_set=pa.array(list(letters)))
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int8)


def date_days(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A date32 column as days since the epoch, what ``col.cast(pa.int32()).to_numpy(
    zero_copy_only=False)`` gives: a one-piece column without nulls is read in place (read-only),
    ~3x faster than the cast (~16-24 us a call, called several times per import block)."""
    if isinstance(col, pa.ChunkedArray) and col.num_chunks == 1:
        col = col.chunk(0)
    if isinstance(col, pa.Array) and col.null_count == 0:
        return col.view(pa.int32()).to_numpy()
    return col.cast(pa.int32()).to_numpy(zero_copy_only=False)


def one_letter_strings(codes: np.ndarray, letters: str) -> pa.StringArray:
    """The string array of letters[codes[i]] (no nulls), built from its bytes (the inverse of
    letter_codes): ~10x faster than an Arrow take."""
    data = np.frombuffer(letters.encode("ascii"), np.uint8)[codes]
    offsets = np.arange(len(codes) + 1, dtype=np.int32)
    return pa.StringArray.from_buffers(len(codes), pa.py_buffer(offsets), pa.py_buffer(data))


def _string_ranks(col: pa.ChunkedArray) -> np.ndarray:
    """Each string's rank among the column's distinct values (order-preserving integers)."""
    encoded = pc.dictionary_encode(col.combine_chunks())
    values = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    rank_of_entry = np.argsort(np.argsort(values))
    return rank_of_entry[encoded.indices.to_numpy(zero_copy_only=False)]


def _sort_keys(table: pa.Table, names: Iterable[str] = CHAIN_SORT_KEYS) -> list[np.ndarray]:
    """The named sort keys (CHAIN_SORT_KEYS) as order-preserving numpy columns."""
    keys = [table.column(k) for k in names]
    return [_string_ranks(k) if pa.types.is_string(k.type)
            else k.cast(pa.int32()).to_numpy(zero_copy_only=False) if pa.types.is_date32(k.type)
            else k.to_numpy(zero_copy_only=False)
            for k in keys]


def packed_order(fields: list[np.ndarray]) -> np.ndarray | None:
    """The stable order of rows by integer `fields` (the first the most significant), from one
    int64 key packing them all, or None where their ranges do not fit in 63 bits. On sorted
    input (the usual case) the key is checked in one pass and no sort is run."""
    n = len(fields[0])
    lows = [int(f.min()) for f in fields]
    bits = [max(int(f.max()) - low, 0).bit_length() for f, low in zip(fields, lows)]
    if sum(bits) > 63:
        return None
    key = np.zeros(n, np.int64)
    for f, low, b in zip(fields, lows, bits):
        key = (key << b) | (f.astype(np.int64) - low)
    if np.all(key[:-1] <= key[1:]):
        return np.arange(n)
    return np.argsort(key, kind="stable")


def chain_order(quote_date: np.ndarray, expiration: np.ndarray, right: np.ndarray,
                strike: np.ndarray) -> np.ndarray | None:
    """The stable order of rows by CHAIN_SORT_KEYS from the keys as numpy columns (dates and
    rights as order-preserving integers, calls first); None where already in it."""
    if len(strike) < 2:
        return None
    keys = [quote_date, expiration, right, strike]
    milli = np.rint(strike * 1000.0) if np.isfinite(strike).all() else None
    # packed when strikes are exact thousandths (then distinct strikes keep distinct keys)
    order = packed_order([quote_date, expiration, right, milli.astype(np.int64)]) if milli is not None and np.all(
        milli / 1000.0 == strike) else None
    if order is None:
        return None if is_sorted_by(keys) else np.lexsort(keys[::-1])
    return None if np.all(order[1:] > order[:-1]) else order


def _chain_order(table: pa.Table) -> np.ndarray | None:
    """The rows' order by CHAIN_SORT_KEYS; None where already in it."""
    return chain_order(*_sort_keys(table))


def is_sorted_by(cols) -> bool:
    """Whether the rows are in ascending lexicographic order of the columns (ties allowed)."""
    before_or_tie = np.ones(max(len(cols[0]) - 1, 0), bool)  # rows equal on all earlier keys
    for col in cols:
        a, b = col[:-1], col[1:]
        if np.any(before_or_tie & (a > b)):
            return False
        before_or_tie &= a == b
    return True


def sort_chains(table: pa.Table) -> pa.Table:
    if table.num_rows < 2:
        return table
    order = _chain_order(table)
    if order is None:
        return table
    # a stable numpy sort of the key columns, then a take column by column: ~2x faster on one
    # core than Table.sort_by (string comparisons, a table-wide take)
    order = pa.array(order)
    return pa.Table.from_arrays([col.take(order) for col in table.columns], schema=table.schema)


class DatasetWriter:
    """Builds a whole dataset atomically.

    Use as a context manager; on a clean exit the dataset is renamed to ``out`` (replacing an
    existing one only with ``overwrite=True``), on an exception nothing is left behind.
    """

    def __init__(self, out: str | os.PathLike, *, overwrite: bool = False, compression: str = "zstd"):
        self.out = Path(out)
        self.compression = compression  # of chain files; generators trade size for speed with "snappy"
        if self.out.exists() and not overwrite:
            if not self.out.is_dir() or any(self.out.iterdir()):
                raise StoreError(f"{self.out}: output exists and is not empty (use --overwrite)")
        parent = self.out.parent if str(self.out.parent) else Path(".")
        if not parent.exists():
            raise StoreError(f"{parent}: parent directory of the output does not exist")
        if not os.access(parent, os.W_OK):
            raise StoreError(f"{parent}: not writable")
        self.tmp = parent / f".{self.out.name}.{uuid.uuid4().hex}.partial"
        self.overwrite = overwrite
        self.meta: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "sources": [],
            "underlyings": {},
            "indices": {},
            "quarantine": {"rows": 0, "reasons": {}},
        }

    def __enter__(self) -> "DatasetWriter":
        self.tmp.mkdir()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        self._commit()

    # -- parts
    def write_chains(self, underlying: str, table: pa.Table, part: str) -> None:
        """Write one part of a chain; rows are split by year into hive partitions."""
        table = sort_chains(conform(table, CHAIN_SCHEMA))
        years = pc.year(table.column("quote_date")).to_numpy(zero_copy_only=False)
        u = self.meta["underlyings"].setdefault(
            underlying, {"rows": 0, "start": None, "end": None}
        )
        for year in np.unique(years):
            d = self.tmp / "chains" / f"underlying={underlying}" / f"year={int(year)}"
            d.mkdir(parents=True, exist_ok=True)
            part_table = table if len(years) and years[0] == years[-1] else table.filter(pa.array(years == year))
            pq.write_table(part_table, d / f"{part}.parquet", compression=self.compression,
                           use_dictionary=CHAIN_DICTIONARY_COLUMNS, write_statistics=CHAIN_STATISTICS_COLUMNS)
        if table.num_rows:
            dates = table.column("quote_date")
            start, end = pc.min(dates).as_py(), pc.max(dates).as_py()
            u["rows"] += table.num_rows
            u["start"] = min(filter(None, [u["start"], start.isoformat()]))
            u["end"] = max(filter(None, [u["end"], end.isoformat()]))

    def write_underlying(self, symbol: str, table: pa.Table, part: str = "bars") -> None:
        d = self.tmp / "underlyings" / f"underlying={symbol}"
        d.mkdir(parents=True, exist_ok=True)
        pq.write_table(conform(table, BAR_SCHEMA).sort_by("date"), d / f"{part}.parquet")

    def write_index(self, name: str, table: pa.Table, part: str = "index") -> None:
        d = self.tmp / "indices" / f"name={name}"
        d.mkdir(parents=True, exist_ok=True)
        table = conform(table, INDEX_SCHEMA).sort_by("date")
        pq.write_table(table, d / f"{part}.parquet")
        self.meta["indices"][name] = {"rows": table.num_rows}

    def write_regimes(self, symbol: str, table: pa.Table, part: str = "regimes") -> None:
        """One row per trading day: the regime label of `symbol` that day."""
        d = self.tmp / "regimes" / f"underlying={symbol}"
        d.mkdir(parents=True, exist_ok=True)
        pq.write_table(conform(table, REGIME_SCHEMA).sort_by("date"), d / f"{part}.parquet")

    def write_quarantine(self, table: pa.Table, part: str) -> None:
        if not table.num_rows:
            return
        d = self.tmp / "quarantine"
        d.mkdir(parents=True, exist_ok=True)
        table = conform(table, QUARANTINE_SCHEMA)
        pq.write_table(table, d / f"{part}.parquet")
        q = self.meta["quarantine"]
        q["rows"] += table.num_rows
        for item in pc.value_counts(table.column("reason")).to_pylist():
            q["reasons"][item["values"]] = q["reasons"].get(item["values"], 0) + item["counts"]

    def add_source(self, source: dict[str, Any]) -> None:
        self.meta["sources"].append(source)

    def _commit(self) -> None:
        atomic_write_json(self.meta, self.tmp / DATASET_JSON)
        if self.out.exists():
            trash = self.out.with_name(f".{self.out.name}.{uuid.uuid4().hex}.old")
            os.replace(self.out, trash)
            os.replace(self.tmp, self.out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(self.tmp, self.out)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class ChainArrays:
    """One underlying's chain rows as plain numpy columns, sorted by (quote_date, expiration,
    right, strike). Dates are int32 days since 1970-01-01; ``is_call`` is bool; ``root`` holds
    codes into ``roots``. This is what crosses into numba and into Ray's object store."""

    quote_date: np.ndarray
    expiration: np.ndarray
    strike: np.ndarray
    is_call: np.ndarray
    root: np.ndarray
    roots: tuple[str, ...]
    european: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    iv: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    theta: np.ndarray
    vega: np.ndarray
    underlying_price: np.ndarray
    volume: np.ndarray
    open_interest: np.ndarray

    def __len__(self) -> int:
        return len(self.quote_date)


def _days(col: pa.ChunkedArray) -> np.ndarray:
    return col.cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)


def _filled(col: pa.ChunkedArray, fill) -> pa.ChunkedArray:
    return col.fill_null(fill) if col.null_count else col  # fill_null copies even without nulls


def _floats(col: pa.ChunkedArray) -> np.ndarray:
    return _filled(col, np.nan).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _ints(col: pa.ChunkedArray) -> np.ndarray:
    return _filled(col, -1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def _strings(col: pa.ChunkedArray) -> pa.Array:
    return col.cast(pa.string()).combine_chunks()


def _is_call(col: pa.ChunkedArray) -> np.ndarray:
    return pc.equal(_strings(col), "C").to_numpy(zero_copy_only=False)


def _european(col: pa.ChunkedArray) -> np.ndarray:
    return pc.equal(_strings(col), "E").to_numpy(zero_copy_only=False)


# ChainArrays field -> (its table column, converter); ``root`` and ``roots`` both come from "root"
_FIELD_SOURCES = {
    "quote_date": ("quote_date", _days), "expiration": ("expiration", _days), "strike": ("strike", _floats),
    "is_call": ("right", _is_call), "european": ("style", _european),
    **{name: (name, _floats) for name in ("bid", "ask", "iv", "delta", "gamma", "theta", "vega", "underlying_price")},
    **{name: (name, _ints) for name in ("volume", "open_interest")},
}


def chain_columns(names: Iterable[str]) -> list[str]:
    """The table columns that the named ChainArrays fields are made from."""
    return list(dict.fromkeys(_FIELD_SOURCES[n][0] if n in _FIELD_SOURCES else "root" for n in names))


def chain_fields(table: pa.Table, names: Iterable[str]) -> dict[str, Any]:
    """The named ChainArrays fields of a chain table as numpy columns (nulls become NaN / -1);
    the table needs only their :func:`chain_columns`."""
    names = list(names)
    out = {n: convert(table.column(column)) for n in names if n in _FIELD_SOURCES
           for column, convert in [_FIELD_SOURCES[n]]}
    if "root" in names or "roots" in names:
        roots_col = pc.dictionary_encode(_strings(table.column("root")))
        out["root"] = roots_col.indices.to_numpy(zero_copy_only=False).astype(np.int16)
        out["roots"] = tuple(roots_col.dictionary.to_pylist())
    return out


def chain_arrays(table: pa.Table) -> ChainArrays:
    """Convert a chain table (already sorted) into plain numpy columns (nulls become NaN / -1)."""
    return ChainArrays(**chain_fields(table, [f.name for f in fields(ChainArrays)]))


class Dataset:
    """Read access to a canonical dataset at a local path or pyarrow filesystem URI."""

    def __init__(self, path: str | os.PathLike):
        self.uri = str(path)
        try:
            self.fs, self.root = pafs.FileSystem.from_uri(self.uri)
        except (pa.ArrowInvalid, ValueError):
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(self.uri)
        info = self.fs.get_file_info(self._p(DATASET_JSON))
        if info.type != pafs.FileType.File:
            raise StoreError(f"{self.uri}: not a dataset ({DATASET_JSON} missing)")
        with self.fs.open_input_stream(self._p(DATASET_JSON)) as f:
            try:
                self.meta: dict[str, Any] = json.loads(f.read())
            except json.JSONDecodeError as exc:
                raise StoreError(f"{self.uri}/{DATASET_JSON}: invalid JSON: {exc}") from None
        version = self.meta.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.uri}/{DATASET_JSON}: schema_version {version!r}, expected {SCHEMA_VERSION}"
            )

    def _p(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def _list(self, *parts: str) -> list[pafs.FileInfo]:
        sel = pafs.FileSelector(self._p(*parts), allow_not_found=True)
        return sorted(self.fs.get_file_info(sel), key=lambda i: i.path)

    @property
    def underlyings(self) -> list[str]:
        return [
            i.base_name.split("=", 1)[1]
            for i in self._list("chains")
            if i.type == pafs.FileType.Directory and i.base_name.startswith("underlying=")
        ]

    @property
    def indices(self) -> list[str]:
        return [
            i.base_name.split("=", 1)[1]
            for i in self._list("indices")
            if i.type == pafs.FileType.Directory and i.base_name.startswith("name=")
        ]

    def chain_files(
        self, underlying: str, start: dt.date | None = None, end: dt.date | None = None
    ) -> list[str]:
        if underlying not in self.underlyings:
            raise StoreError(
                f"{self.uri}: no chains for underlying {underlying!r} "
                f"(available: {', '.join(self.underlyings) or 'none'})"
            )
        files = []
        for ydir in self._list("chains", f"underlying={underlying}"):
            year = int(ydir.base_name.split("=", 1)[1])
            if (start and year < start.year) or (end and year > end.year):
                continue
            files += [i.path for i in self._list("chains", f"underlying={underlying}", ydir.base_name)
                      if i.base_name.endswith(".parquet") and not i.base_name.startswith(".")]
        return files

    def read_chains(
        self,
        underlying: str,
        start: str | dt.date | None = None,
        end: str | dt.date | None = None,
        columns: Iterable[str] | None = None,
    ) -> pa.Table:
        """One underlying's chain rows with start <= quote_date <= end, sorted, as Arrow."""
        start, end = to_date(start, "start"), to_date(end, "end")
        files = self.chain_files(underlying, start, end)
        schema = CHAIN_SCHEMA if columns is None else pa.schema([CHAIN_SCHEMA.field(c) for c in columns])
        if not files:
            return schema.empty_table()
        data = pads.dataset(files, schema=CHAIN_SCHEMA, format="parquet", filesystem=self.fs)
        flt = None
        date = pads.field("quote_date")
        if start:
            flt = date >= pa.scalar(start, pa.date32())
        if end:
            cond = date <= pa.scalar(end, pa.date32())
            flt = cond if flt is None else flt & cond
        table = data.to_table(columns=list(schema.names), filter=flt)
        keys = [k for k in CHAIN_SORT_KEYS if k in schema.names]
        if not keys or is_sorted_by(_sort_keys(table, keys)):  # as written: sorted files, read in order
            return table
        return table.sort_by([(k, "ascending") for k in keys])

    def _read_dir(self, parts: tuple[str, ...], schema: pa.Schema, what: str) -> pa.Table:
        files = [i.path for i in self._list(*parts) if i.base_name.endswith(".parquet")]
        if not files:
            raise StoreError(f"{self.uri}: no {what}")
        return pads.dataset(files, schema=schema, format="parquet", filesystem=self.fs).to_table().sort_by("date")

    def read_underlying(self, symbol: str) -> pa.Table:
        return self._read_dir(("underlyings", f"underlying={symbol}"), BAR_SCHEMA, f"underlying bars for {symbol!r}")

    def read_index(self, name: str) -> pa.Table:
        return self._read_dir(("indices", f"name={name}"), INDEX_SCHEMA, f"index {name!r}")

    def read_regimes(self, symbol: str) -> pa.Table | None:
        """The per-day regime table of `symbol`, or None when the dataset has none."""
        files = [i.path for i in self._list("regimes", f"underlying={symbol}") if i.base_name.endswith(".parquet")]
        if not files:
            return None
        return pads.dataset(files, schema=REGIME_SCHEMA, format="parquet", filesystem=self.fs).to_table().sort_by("date")

    def read_quarantine(self) -> pa.Table:
        files = [i.path for i in self._list("quarantine") if i.base_name.endswith(".parquet")]
        if not files:
            return QUARANTINE_SCHEMA.empty_table()
        return pads.dataset(files, schema=QUARANTINE_SCHEMA, format="parquet", filesystem=self.fs).to_table()
