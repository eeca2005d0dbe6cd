"""The fast reader of fixed vendor CSV layouts: decompressed bytes -> typed columns in one numba
pass (backtest.importers.csv_nb), for formats whose records are one unquoted line each.

Gzip input is decompressed with ISA-L (python-isal's igzip, ~2.5x zlib on the SPX sample).
Blocks of whole lines are handed to the kernel, which converts numbers and dates in the file's
detected format, finds each symbol's trading class and checks rights and the single underlying
on the way; texts it does not convert itself (empty values, NaN, exponents, other date
spellings) come back as a few deferred tokens and are converted here with Arrow's own parsers,
so values come out exactly as the Arrow reader (``source.read_csv_batches``) gives them, and
bad ones raise the same errors, naming file, line and column. A block holding a double quote,
and a file whose dates are in a format the kernel does not parse, are read by the Arrow reader.
"""
from __future__ import annotations

import gzip
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from backtest.importers import csv_nb
from backtest.importers.common import OSI_SUFFIX, FileState, root_dictionary
from backtest.importers.source import (
    BLOCK_SIZE,
    EXPECTED_DATE,
    EXPECTED_RIGHT,
    EXPECTED_UNDERLYING,
    NULL_VALUES,
    CsvLayout,
    CsvPlan,
    ImportFileError,
    arrow_error,
    bad_right_error,
    convert_options,
    empty_column_error,
    head_rows,
    input_label,
    mixed_dates_error,
    not_a_number_error,
    parse_dates,
    plan_rows,
    read_csv_batches,
    underlying_changes_error,
)
from backtest.store import one_letter_strings

try:  # ISA-L decompresses ~2.5x faster than zlib; the standard library's gzip reads the same files
    from isal import igzip as gzip_module
    from isal.isal_zlib import error as _isal_error
except ImportError:  # pragma: no cover - isal is a declared dependency
    gzip_module, _isal_error = gzip, zlib.error

_DECOMPRESSION_ERRORS = (EOFError, zlib.error, _isal_error, gzip.BadGzipFile)
_DATE_CODES = {"%m/%d/%Y": csv_nb.MDY, "%Y-%m-%d": csv_nb.YMD_DASH, "%Y%m%d": csv_nb.YMD}


@dataclass(frozen=True)
class FixedColumns:
    """The columns (normalised names) the kernel reads, by kind; other known columns of the
    layout are skipped (their values are not needed by the format)."""

    numbers: tuple[str, ...]
    dates: tuple[str, ...]
    underlying: str
    osi_symbol: str
    right: str


@dataclass(frozen=True)
class FixedBlock:
    """One block's typed columns: numbers NaN where empty, dates as days since the epoch."""

    rows: int
    numbers: dict[str, np.ndarray]
    dates: dict[str, np.ndarray]
    underlying: str
    root: pa.Array  # dictionary-encoded trading class
    right: pa.Array  # 'C' / 'P'


@contextmanager
def _open_bytes(path: Path, member: str | None):
    if member is not None:
        with zipfile.ZipFile(path) as archive, archive.open(member) as stream:
            yield stream
    elif path.name.lower().endswith(".gz"):
        with gzip_module.open(path, "rb") as stream:
            yield stream
    else:
        with open(path, "rb") as stream:
            yield stream


def _lines(stream, block_size: int) -> Iterator[bytes]:
    """Blocks of whole lines (the last may lack its newline)."""
    rest = b""
    while block := stream.read(block_size):
        block = rest + block
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            rest = block
            continue
        rest = block[cut:]
        yield block[:cut]
    if rest:
        yield rest


def fixed_blocks(path: str | Path, member: str | None, layout: CsvLayout, columns: FixedColumns, what: str,
                 state: FileState, block_size: int = BLOCK_SIZE) -> Iterator[tuple[FixedBlock | pa.Table, int]]:
    """Yield (block, file line of its first row): a FixedBlock, or for blocks the kernel does not
    read (quoted fields; dates in other formats) the Arrow reader's table of the raw columns."""
    path = Path(path)
    label = input_label(path, member)
    line = 1
    try:
        with _open_bytes(path, member) as stream:
            blocks = _lines(stream, block_size)
            first = next(blocks, b"")
            header_end = first.find(b"\n") + 1 or len(first)
            plan = plan_rows(head_rows(first), label, layout, what)
            if any(plan.date_formats.get(n) not in _DATE_CODES for n in columns.dates if n in plan.types):
                yield from read_csv_batches(path, layout, what, member, block_size)
                return
            reader = _BlockReader(path, member, plan, columns, state)
            line = 2
            block, start = first, header_end  # the first block read after its header, not copied without it
            while block is not None:
                if len(block) > start:
                    item, lines = reader.read(block, line, start)
                    if item.rows if isinstance(item, FixedBlock) else item.num_rows:
                        yield item, line
                    line += lines
                block, start = next(blocks, None), 0
    except _DECOMPRESSION_ERRORS as exc:
        raise ImportFileError(f"{label} after line {line}: corrupt or truncated compressed data "
                              f"({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        raise ImportFileError(f"{label} after line {line}: cannot read ({exc})") from None
    except zipfile.BadZipFile as exc:
        raise ImportFileError(f"{path}: not a valid zip archive ({exc})") from None


def _long_decimals(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """float64 values of the plain decimal texts data[starts[i]:ends[i]] (in data order), by
    Arrow's own parser (correctly rounded) straight from the block: a string array whose values
    are the texts and, as nulls that are not parsed, the bytes between them."""
    n = len(starts)
    offsets = np.empty(2 * n + 1, np.int32)
    offsets[0:-1:2], offsets[1::2], offsets[-1] = starts, ends, ends[-1]
    valid = pa.py_buffer(np.full((2 * n + 7) // 8, 0b01010101, np.uint8))  # the even values
    texts = pa.StringArray.from_buffers(2 * n, pa.py_buffer(offsets), pa.py_buffer(data), valid, null_count=n)
    return pc.cast(texts, pa.float64()).to_numpy(zero_copy_only=False)[::2]


def _nulls(texts: pa.Array) -> pa.Array:
    """Texts with the CSV reader's null values (NULL_VALUES) as nulls."""
    return pc.if_else(pc.is_in(texts, value_set=_NULL_TEXTS), pa.scalar(None, pa.string()), texts)


_NULL_TEXTS = pa.array(NULL_VALUES)


class _BlockReader:
    """The kernel's column kinds for one file's header, and the conversion of its blocks."""

    def __init__(self, path: Path, member: str | None, plan: CsvPlan, columns: FixedColumns, state: FileState):
        self.path, self.member, self.plan, self.state = path, member, plan, state
        self.label = input_label(path, member)
        self.numbers = [n for n in columns.numbers if n in plan.types]
        self.dates = [n for n in columns.dates if n in plan.types]
        kinds, slots = np.full(len(plan.names), csv_nb.SKIP, np.int64), np.zeros(len(plan.names), np.int64)
        for kind, names in ((csv_nb.NUMBER, self.numbers), (csv_nb.DATE, self.dates),
                            (csv_nb.UNDERLYING, [columns.underlying]), (csv_nb.OSI_SYMBOL, [columns.osi_symbol]),
                            (csv_nb.RIGHT, [columns.right])):
            for slot, name in enumerate(names):
                kinds[plan.names.index(name)], slots[plan.names.index(name)] = kind, slot
        self.kinds, self.slots = kinds, slots
        self.date_codes = np.array([_DATE_CODES[plan.date_formats[n]] for n in self.dates], np.int64)
        self.deferred = np.empty((1024, 6), np.int64)  # (row, line, column, start, end, status) of deferred tokens

    def raw_name(self, column: int) -> str:
        return self.plan.raw_names[column].strip()

    def read(self, block: bytes, line: int, start: int = 0) -> tuple[FixedBlock | pa.Table, int]:
        """The rows of block[start:] and the number of lines they held."""
        if block.find(b'"', start) >= 0:
            return self._arrow(block[start:], line), block.count(b"\n", start) + (not block.endswith(b"\n"))
        data = np.frombuffer(block, np.uint8, offset=start)
        while True:  # the kernel stops when its buffer of deferred tokens is full: give it a larger one
            (rows, numbers, dates, rights, root_codes, root_starts, root_lengths, (under_a, under_b), deferred,
             lines, error) = csv_nb.parse_block(data, self.kinds, self.slots, len(self.numbers), len(self.dates),
                                                self.date_codes, OSI_SUFFIX, self.deferred)
            code, error_line, column, fields = (int(v) for v in error)
            if code != csv_nb.DEFERRED_FULL:
                break
            self.deferred = np.empty((2 * len(self.deferred), 6), np.int64)
        if under_a >= 0:
            self._check_underlying(bytes(data[under_a:under_b]).decode("utf-8", "replace").upper(), line)
        if len(deferred):  # before a kernel error: a deferred token on an earlier line comes first
            self._convert_deferred(data, deferred, numbers, dates, line,
                                   None if code == csv_nb.OK else error_line)
        if code != csv_nb.OK:
            self._raise(code, data, line, error_line, column, fields)
        underlying = self.state.underlying or ""
        return FixedBlock(
            rows, dict(zip(self.numbers, numbers)), dict(zip(self.dates, dates)), underlying,
            root_dictionary(data, root_codes, root_starts, root_lengths, underlying),
            one_letter_strings(rights, "CP")), lines

    def _check_underlying(self, symbol: str, line: int) -> None:
        if self.state.underlying is None:
            self.state.underlying = symbol
        elif symbol != self.state.underlying:
            raise underlying_changes_error(self.label, line, self.state.underlying, symbol)

    def _raise(self, code: int, data: np.ndarray, block_line: int, error_line: int, column: int, fields: int) -> None:
        line = block_line + error_line
        if code == csv_nb.COLUMN_COUNT:
            raise ImportFileError(f"{self.label} line {line}: Expected {len(self.plan.names)} columns, got {fields}")
        text = bytes(data).split(b"\n")[error_line].decode("utf-8", "replace").rstrip("\r")
        name, value = self.plan.names[column], text.split(",")[column].strip()
        if code == csv_nb.EMPTY:
            expected = EXPECTED_UNDERLYING if self.kinds[column] == csv_nb.UNDERLYING else EXPECTED_RIGHT
            raise empty_column_error(self.label, line, name, expected)
        if code == csv_nb.BAD_RIGHT:
            raise bad_right_error(self.label, line, name, value.lower())
        found = value.lstrip("^").upper()
        raise underlying_changes_error(self.label, line, self.state.underlying or found, found)

    def _convert_deferred(self, data: np.ndarray, deferred, numbers, dates, line, stop_line) -> None:
        """Convert the tokens the kernel left (rows of row, line, column, start, end, status) in
        place: plain decimals with too many digits for the kernel's exact path in one call, others
        with Arrow's parsers column by column; a bad one raises naming its
        line (unless a kernel error on `stop_line` comes first)."""
        if stop_line is not None:
            deferred = deferred[deferred[:, 1] < stop_line]
        long = deferred[:, 5] == csv_nb.LONG_DECIMAL
        if long.any():
            tokens = deferred[long]
            numbers[self.slots[tokens[:, 2]], tokens[:, 0]] = _long_decimals(data, tokens[:, 3], tokens[:, 4])
            deferred = deferred[~long]
        for column in np.unique(deferred[:, 2]):
            tokens = deferred[deferred[:, 2] == column]
            texts = pa.array([data[s:e].tobytes() for s, e in tokens[:, 3:5].tolist()], pa.binary()).cast(pa.string())
            slot, rows = self.slots[column], tokens[:, 0]
            if self.kinds[column] == csv_nb.NUMBER:
                numbers[slot, rows] = self._numbers(texts, tokens[:, 1] + line, int(column))
            else:
                dates[slot, rows] = self._dates(texts, tokens[:, 1] + line, int(column))

    def _numbers(self, texts: pa.Array, lines: np.ndarray, column: int) -> np.ndarray:
        values = _nulls(texts)
        try:
            return pc.cast(values, pa.float64()).fill_null(np.nan).to_numpy()
        except pa.ArrowInvalid:
            for t, where in zip(values.to_pylist(), lines):
                try:
                    pc.cast(pa.array([t], pa.string()), pa.float64())
                except pa.ArrowInvalid:
                    raise not_a_number_error(self.label, int(where), self.raw_name(column), t) from None
            raise

    def _dates(self, texts: pa.Array, lines: np.ndarray, column: int) -> np.ndarray:
        name = self.plan.names[column]
        fmt = self.plan.date_formats[name]
        values = _nulls(texts)
        if values.null_count:
            raise empty_column_error(self.label, int(lines[pc.index(pc.is_null(values), True).as_py()]), name,
                                     EXPECTED_DATE)
        parsed = pc.strptime(pc.utf8_trim_whitespace(values), format=fmt, unit="s", error_is_null=True)
        if parsed.null_count:
            row = pc.index(pc.is_null(parsed), True).as_py()
            raise mixed_dates_error(self.label, int(lines[row]), self.raw_name(column), texts[row].as_py(), fmt)
        return parsed.cast(pa.date32()).cast(pa.int32()).to_numpy()

    def _arrow(self, block: bytes, line: int) -> pa.Table:
        """A block with quoted fields, read by Arrow's CSV parser."""
        read = pacsv.ReadOptions(column_names=self.plan.names, use_threads=False, block_size=len(block) + 1)
        try:
            table = pacsv.read_csv(pa.BufferReader(block), read_options=read,
                                   convert_options=convert_options(self.plan))
        except pa.ArrowInvalid as exc:
            raise arrow_error(exc, self.path, self.member, self.plan, line, row_one=line) from None
        return parse_dates(table, self.plan, self.label, line)
