"""Building canonical chain rows (backtest.schema.CHAIN_SCHEMA) from vendor columns.

Shared by every format: option rights, the trading class (root) from an OSI-style symbol,
exercise style, the one-underlying-per-file rule and the final column set. Prices a vendor left
empty become NaN so that validation quarantines the row with a reason instead of the import
failing; structural fields (dates, right, underlying) that are empty are an error naming the line.
"""
from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from backtest.importers.columns_nb import whole_numbers
from backtest.importers.source import (
    EXPECTED_RIGHT,
    EXPECTED_UNDERLYING,
    CsvLayout,
    bad_right_error,
    empty_column_error,
    input_label,
    read_csv_batches,
    underlying_changes_error,
)
from backtest.importers.symbols_nb import osi_roots
from backtest.schema import CHAIN_SCHEMA
from backtest.store import one_letter_strings

# Cash-settled index option classes with European exercise; everything else is taken as American
# (US equity and ETF options). A generic mapping can set the style explicitly.
EUROPEAN_ROOTS = frozenset(
    {"SPX", "SPXW", "SPXPM", "XSP", "NDX", "NDXP", "XND", "RUT", "RUTW", "MRUT", "VIX", "VIXW",
     "DJX", "XEO", "MXEA", "MXEF"}
)
_RIGHTS = {"c": "C", "call": "C", "calls": "C", "p": "P", "put": "P", "puts": "P"}
OSI_SUFFIX = 15  # OSI option symbols end in yymmdd, C/P and the strike in thousandths (8 digits)

FLOAT_COLUMNS = ("strike", "bid", "ask", "last", "iv", "delta", "gamma", "theta", "vega", "underlying_price")
REQUIRED_FLOATS = ("strike", "bid", "ask", "underlying_price")


@dataclass(frozen=True)
class Chunk:
    """Canonical rows from one parse block of one input, and where they came from."""

    chain: pa.Table
    first_line: int  # file line of the block's first record (the header is line 1)
    input_records: int  # CSV records read (OptionsDX has two options per record)


@dataclass
class FileState:
    """What one input file has shown so far (its single underlying)."""

    label: str
    underlying: str | None = None


def text(col) -> pa.Array:
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return col.cast(pa.string()) if pa.types.is_dictionary(col.type) else col


def first_null_line(col, first_line: int) -> int | None:
    if col.null_count == 0:
        return None
    return first_line + pc.index(pc.is_null(col), True).as_py()


def require_values(col, label: str, first_line: int, column: str, expected: str) -> None:
    line = first_null_line(col, first_line)
    if line is not None:
        raise empty_column_error(label, line, column, expected)


def per_label(col, fn) -> pa.Array:
    """Apply a vectorised string function to the distinct values of a dictionary-encoded column
    (a few labels instead of every row), else to the column."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(col.type):
        return pc.take(fn(col.dictionary.cast(pa.string())), col.indices)
    return fn(col)


def rights(col, label: str, first_line: int, column: str) -> pa.Array:
    """'C'/'P' from call/put/C/P in any case; anything else is an error naming the line."""
    col = per_label(col, lambda v: pc.utf8_lower(pc.utf8_trim_whitespace(v)))
    require_values(col, label, first_line, column, EXPECTED_RIGHT)
    idx = pc.index_in(col, value_set=pa.array(list(_RIGHTS)))
    if idx.null_count:
        row = pc.index(pc.is_null(idx), True).as_py()
        raise bad_right_error(label, first_line + row, column, col[row].as_py())
    return pc.take(pa.array(list(_RIGHTS.values())), idx)


def clean_symbol(col) -> pa.Array:
    """Upper-case symbol without whitespace or an index caret (Cboe writes ^SPX)."""
    return per_label(col, lambda v: pc.utf8_upper(pc.utf8_ltrim(pc.utf8_trim_whitespace(v), characters="^")))


def root_from_osi(symbols, fallback: pa.Array) -> pa.Array:
    """Trading class from OSI-style symbols: the text before the 15-character yymmdd + C/P +
    8-digit strike suffix (SPXW190426C00800000 -> SPXW, "SPY   210129P00345000" -> SPY), upper
    case. A shorter value is taken to be the root itself; an empty one falls back to `fallback`.
    Dictionary-encoded: the roots are found from the string buffers by a numba kernel."""
    col = text(symbols)
    if not pa.types.is_string(col.type):
        col = col.cast(pa.string())
    _, offset_buffer, data_buffer = col.buffers()
    offsets = np.frombuffer(offset_buffer, np.int32)[col.offset: col.offset + len(col) + 1]
    data = np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    valid = col.is_valid().to_numpy(zero_copy_only=False)
    return root_dictionary(data, *osi_roots(offsets, data, valid, OSI_SUFFIX), fallback)


def root_dictionary(data: np.ndarray, codes: np.ndarray, starts: np.ndarray, lengths: np.ndarray,
                    fallback: pa.Array | str) -> pa.Array:
    """Dictionary-encoded upper-case roots from the kernels' codes and the distinct roots' bytes
    in `data`; rows without one (code -1) take `fallback` (the underlying)."""
    names = [bytes(data[s: s + n]).decode("utf-8", errors="replace").upper() for s, n in zip(starts, lengths)]
    distinct = sorted(set(names))
    remap = np.array([distinct.index(name) for name in names], np.int32)
    missing = codes < 0
    if not missing.any():
        return pa.DictionaryArray.from_arrays(pa.array(remap[codes]), pa.array(distinct, pa.string()))
    indices = pa.array(np.where(missing, 0, remap[np.maximum(codes, 0)]), pa.int32(), mask=missing)
    roots = pa.DictionaryArray.from_arrays(indices, pa.array(distinct, pa.string()))
    if isinstance(fallback, str):
        fallback = pa.array([fallback] * len(codes), pa.string())
    fallback = fallback.combine_chunks() if isinstance(fallback, pa.ChunkedArray) else fallback
    return pc.coalesce(roots.cast(pa.string()), text(fallback))


def styles(roots: pa.Array) -> pa.Array:
    """'E' for the European trading classes (EUROPEAN_ROOTS), else 'A'."""
    if isinstance(roots, pa.DictionaryArray) and roots.null_count == 0:  # a few labels: per label, then per row
        european = np.array([r in EUROPEAN_ROOTS for r in roots.dictionary.to_pylist()], bool)
        return one_letter_strings(european[roots.indices.to_numpy()].view(np.int8), "AE")
    return per_label(roots, lambda r: pc.if_else(pc.is_in(r, value_set=pa.array(sorted(EUROPEAN_ROOTS))), "E", "A"))


def check_single_underlying(state: FileState, underlying: pa.Array, first_line: int) -> str:
    """Every row of a file must carry one underlying; return it."""
    underlying = underlying.combine_chunks() if isinstance(underlying, pa.ChunkedArray) else underlying
    require_values(underlying, state.label, first_line, "underlying", EXPECTED_UNDERLYING)
    expected = state.underlying or underlying[0].as_py()
    differs = pc.not_equal(underlying, expected)
    if pc.any(differs).as_py():
        row = pc.index(differs, True).as_py()
        raise underlying_changes_error(state.label, first_line + row, expected, underlying[row].as_py())
    state.underlying = expected
    return expected


def nan_to_null(values: np.ndarray, whole: bool = False) -> pa.Array:
    """A float64 array (int64 with ``whole``) with NaN as null: what pa.array(values,
    from_pandas=True) (then a safe cast to int64) gives, ~5x faster (the validity bitmap from
    numpy, the values not copied). Values that are not whole numbers go through Arrow's cast,
    which raises on them as before."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    valid = ~np.isnan(values)
    nulls = len(values) - int(np.count_nonzero(valid))
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    if whole:
        ints = np.empty(len(values), np.int64)
        if not whole_numbers(values, ints):
            return nan_to_null(values).cast(pa.int64())
        values = ints
    return pa.Array.from_buffers(pa.int64() if whole else pa.float64(), len(values),
                                 [bitmap, pa.py_buffer(values)], null_count=nulls)


def chain_table(n: int, columns: dict[str, pa.Array | pa.ChunkedArray | np.ndarray | None]) -> pa.Table:
    """Assemble CHAIN_SCHEMA rows; missing optional columns are null, empty required prices NaN.
    Numpy columns are numbers with NaN where empty, or dates as int32 days since the epoch."""
    arrays = []
    for f in CHAIN_SCHEMA:
        col = columns.get(f.name)
        if col is None:
            col = pa.nulls(n, f.type)
        elif isinstance(col, np.ndarray):
            if col.dtype == np.int32:
                col = pa.array(col).view(pa.date32())
            elif f.name in REQUIRED_FLOATS:
                col = pa.array(col)  # zero copy: NaN stays NaN
            else:
                col = nan_to_null(col, whole=pa.types.is_integer(f.type))
            arrays.append(col if f.type == col.type else col.cast(f.type))
            continue
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if f.name in FLOAT_COLUMNS:
            col = col.cast(pa.float64())
            if f.name in REQUIRED_FLOATS:
                col = col.fill_null(np.nan)
        elif f.name in ("volume", "open_interest"):
            col = col.cast(pa.int64())
        elif not col.type.equals(f.type):
            col = col.cast(f.type)
        arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=CHAIN_SCHEMA)


class CsvFormat(abc.ABC):
    """A CSV vendor format: a layout plus a function from one parsed block to canonical rows."""

    name: str
    description: str
    layout: CsvLayout

    @abc.abstractmethod
    def to_chain(self, raw: pa.Table, state: FileState, first_line: int) -> pa.Table:
        """Canonical chain rows from one parsed block whose first row is on `first_line`."""

    def file_state(self, path: str | Path, member: str | None) -> FileState:
        return FileState(input_label(path, member))

    def chunks(self, path: str | Path, member: str | None = None) -> Iterator[Chunk]:
        state = self.file_state(path, member)
        for raw, line in read_csv_batches(path, self.layout, f"--format {self.name}", member):
            yield Chunk(self.to_chain(raw, state, line), line, raw.num_rows)
