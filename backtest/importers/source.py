"""Reading vendor files: plain, gzip or zip inputs, streamed in bounded memory as Arrow tables.

A :class:`CsvLayout` says which columns a format knows (required or optional), their Arrow
types, and how to normalise header names. :func:`read_csv_batches` checks the header against
it, detects each date column's format from the first data row (and then holds the whole file
to it), and yields tables of at most one parse block each, with the file line number of their
first row. Conversion errors are turned into :class:`ImportFileError` naming the file, the line,
the column, the value and what was expected (pyarrow reports only the column, so the failing
line is found by re-scanning the file, on the error path only).
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from backtest.errors import UserError

BLOCK_SIZE = 8 << 20  # bytes of CSV text per parse block: bounds memory per worker
DATE = pa.date32()  # marker type: a date column whose format is detected per file
# marker type: text whose values are mostly distinct per row (option symbols), read as plain
# strings; other text is dictionary-encoded while parsed, which costs more than it saves there
UNIQUE_TEXT = pa.large_string()
DATE_FORMATS = ("%Y-%m-%d", "%m/%d/%Y", "%Y%m%d", "%d-%b-%Y", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M")
NULL_VALUES = ["", " ", "NaN", "nan", "NA", "N/A", "null"]


class ImportFileError(UserError):
    """A problem with one input file; the message starts with the file (and line)."""


@dataclass(frozen=True)
class CsvLayout:
    """Columns a format knows, keyed by normalised header name, with their Arrow types."""

    required: dict[str, pa.DataType]
    optional: dict[str, pa.DataType] = field(default_factory=dict)
    ignored: frozenset[str] = frozenset()  # known columns that are not imported
    other_columns_allowed: bool = False  # generic mappings read only the columns they name
    date_format: str | None = None  # strptime format of every date column; None: detect per file
    normalise: Callable[[str], str] = str.strip

    def expected(self) -> str:
        return ", ".join([*self.required, *self.optional, *sorted(self.ignored)])


EXPECTED_RIGHT = "call/put or C/P"
EXPECTED_UNDERLYING = "an underlying symbol"
EXPECTED_DATE = "a date"


def empty_column_error(label: str, line: int, column: str, expected: str) -> ImportFileError:
    return ImportFileError(f"{label} line {line}: column {column!r} is empty, expected {expected}")


def bad_right_error(label: str, line: int, column: str, value: str) -> ImportFileError:
    return ImportFileError(f"{label} line {line}: column {column!r}: {value!r} is not an option right "
                           f"(expected {EXPECTED_RIGHT})")


def underlying_changes_error(label: str, line: int, expected: str, found: str) -> ImportFileError:
    return ImportFileError(f"{label} line {line}: underlying changes from {expected!r} to {found!r}; "
                           "expected one underlying per file")


def not_a_number_error(label: str, line: int, column: str, value: str) -> ImportFileError:
    return ImportFileError(f"{label} line {line}: column {column!r}: {value!r} is not a number")


def input_label(path: str | Path, member: str | None = None) -> str:
    return f"{path}!{member}" if member else str(path)


@contextmanager
def open_input(path: str | Path, member: str | None = None):
    """A binary stream of the (decompressed) contents of `path`, or of `member` of a zip."""
    path = Path(path)
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file")
    try:
        if member is not None:
            with zipfile.ZipFile(path) as archive, archive.open(member) as stream:
                yield stream
        elif path.name.endswith(".gz"):
            with pa.input_stream(str(path), compression="gzip") as stream:
                yield stream
        else:
            with pa.input_stream(str(path)) as stream:
                yield stream
    except zipfile.BadZipFile as exc:
        raise ImportFileError(f"{path}: not a valid zip archive ({exc})") from None


def zip_members(path: str | Path) -> list[str]:
    """The data files inside a zip archive (directories and hidden files skipped)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [i.filename for i in archive.infolist() if not i.is_dir()]
    except zipfile.BadZipFile as exc:
        raise ImportFileError(f"{path}: not a valid zip archive ({exc})") from None
    names = [n for n in names if not Path(n).name.startswith((".", "__MACOSX"))]
    if not names:
        raise ImportFileError(f"{path}: zip archive holds no files")
    return sorted(names)


def _head(path: Path, member: str | None, n_lines: int = 2) -> list[list[str]]:
    """The first `n_lines` CSV records of an input (header and first data row), decompressing
    only the first block or two of the file."""
    label = input_label(path, member)
    head = b""
    try:
        with open_input(path, member) as stream:
            while head.count(b"\n") <= n_lines and (block := stream.read(1 << 16)):
                head += block
        # whole lines only, so that no multi-byte character is cut
        return head_rows(head, n_lines)
    except (OSError, EOFError, UnicodeDecodeError, pa.ArrowInvalid) as exc:
        raise ImportFileError(f"{label}: cannot read ({_io_reason(exc)})") from None


def _io_reason(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, EOFError) or "runcated" in text or "zlib" in text or "gzip" in text.lower():
        return f"corrupt or truncated compressed data: {text}"
    return text


def detect_date_format(value: str, label: str, column: str, line: int) -> str:
    value = value.strip()
    for fmt in DATE_FORMATS:
        try:
            dt.datetime.strptime(value, fmt)
            return fmt
        except ValueError:
            continue
    raise ImportFileError(
        f"{label} line {line}: column {column!r}: {value!r} is not a date "
        f"(expected one of {', '.join(DATE_FORMATS)})"
    )


@dataclass(frozen=True)
class CsvPlan:
    """How one file is read: raw header names, the normalised names, types and date formats."""

    raw_names: list[str]
    names: list[str]
    types: dict[str, pa.DataType]
    date_formats: dict[str, str]


def plan_csv(path: Path, member: str | None, layout: CsvLayout, what: str) -> CsvPlan:
    return plan_rows(_head(path, member), input_label(path, member), layout, what)


def head_rows(head: bytes, n_lines: int = 2) -> list[list[str]]:
    """The first `n_lines` CSV records of a file's first bytes (whole lines of them)."""
    end = 0
    for _ in range(n_lines):
        end = head.find(b"\n", end) + 1
        if end == 0:  # fewer lines: all of them
            end = len(head)
            break
    text = head[:end].decode("utf-8-sig")
    return [row for _, row in zip(range(n_lines), csv.reader(io.StringIO(text, newline="")))]


def plan_rows(rows: list[list[str]], label: str, layout: CsvLayout, what: str) -> CsvPlan:
    """Check a file's header (rows[0]) against `layout`; detect date formats from rows[1]."""
    if not rows or not any(c.strip() for c in rows[0]):
        raise ImportFileError(f"{label}: empty file, expected a CSV header ({what})")
    raw = rows[0]
    names = [layout.normalise(c) for c in raw]
    known = set(layout.required) | set(layout.optional) | set(layout.ignored)
    unknown = [] if layout.other_columns_allowed else [r for r, n in zip(raw, names) if n not in known]
    missing = [c for c in layout.required if c not in names]
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(map(repr, missing))}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(repr(u.strip()) for u in unknown)}")
        raise ImportFileError(
            f"{label} line 1: {'; '.join(parts)} for {what} (expected: {layout.expected()}; "
            "is --format right?)"
        )
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ImportFileError(f"{label} line 1: duplicate column(s) {', '.join(map(repr, dupes))}")
    types = {n: t for n, t in {**layout.required, **layout.optional}.items() if n in names}
    date_formats = {}
    if len(rows) > 1:
        first = dict(zip(names, rows[1]))
        for n, t in types.items():
            if t == DATE and first.get(n, "").strip():
                date_formats[n] = layout.date_format or detect_date_format(
                    first[n], label, raw[names.index(n)].strip(), 2)
    return CsvPlan(raw, names, types, date_formats)


DICT_STRING = pa.dictionary(pa.int32(), pa.string())


def _arrow_type(plan: CsvPlan, name: str) -> pa.DataType:
    # dates and labels repeat a lot: parse each distinct text once via dictionary encoding
    t = plan.types[name]
    if t == UNIQUE_TEXT:
        return pa.string()
    return DICT_STRING if t in (DATE, pa.string()) else t


def parse_date_column(col: pa.Array, fmt: str, label: str, first_line: int, column: str) -> pa.Array:
    """Dictionary-encoded date texts -> date32 with one format; a value in another format is an
    error naming its line (``first_line`` is the line, or row, of the column's first value)."""
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    parsed = pc.strptime(pc.utf8_trim_whitespace(col.dictionary), format=fmt, unit="s", error_is_null=True)
    bad = pc.and_(pc.is_null(parsed), pc.is_valid(col.dictionary))
    if pc.any(bad).as_py():
        row = pc.index(pc.is_in(col.indices, value_set=pa.array(np.flatnonzero(bad), pa.int32())), True).as_py()
        raise mixed_dates_error(label, first_line + row, column, col[row].as_py(), fmt)
    return pc.take(parsed.cast(pa.date32()), col.indices)


def mixed_dates_error(label: str, line: int, column: str, value: str, fmt: str) -> ImportFileError:
    return ImportFileError(
        f"{label} line {line}: column {column!r}: {value!r} is not a date in this file's format {fmt} "
        "(detected from its first value); mixed date formats are not accepted")


def parse_dates(table: pa.Table, plan: CsvPlan, label: str, first_line: int) -> pa.Table:
    """Convert each date column with the format detected for it on line 2."""
    for name, t in plan.types.items():
        if t != DATE:
            continue
        raw_name = plan.raw_names[plan.names.index(name)].strip()
        fmt = plan.date_formats.get(name)
        if fmt is None:  # no value on line 2 to detect a format from
            raise ImportFileError(f"{label} line 2: column {raw_name!r} is empty, expected a date")
        dates = parse_date_column(table.column(name).combine_chunks(), fmt, label, first_line, raw_name)
        table = table.set_column(table.column_names.index(name), name, dates)
    return table


# pyarrow may or may not say "Row #N"; the line is found by re-scanning either way
_CONVERSION = re.compile(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to ([^:]+): invalid value '(.*)'$", re.S)


_PARSE_ROW = re.compile(r"CSV parse error: Row #(\d+): (.*)", re.S)


def _locate_bad_value(path: Path, member: str | None, plan: CsvPlan, exc: pa.ArrowInvalid) -> str:
    """Turn pyarrow's conversion error into 'line N: column C: value V is not T'."""
    m = _CONVERSION.search(str(exc))
    if not m:
        return str(exc)
    index, target, value = int(m.group(1)), m.group(2), m.group(3)
    raw_name = plan.raw_names[index].strip()
    expected = {"double": "a number", "int64": "an integer"}.get(target, target)
    with open_input(path, member) as stream:
        reader = csv.reader(io.TextIOWrapper(stream, encoding="utf-8-sig", newline=""))
        for line, row in enumerate(reader, start=1):
            if line > 1 and index < len(row) and row[index] == value:
                return f"line {line}: column {raw_name!r}: {value!r} is not {expected}"
    return f"column {raw_name!r}: {value!r} is not {expected}"


def read_csv_batches(
    path: str | Path, layout: CsvLayout, what: str, member: str | None = None, block_size: int = BLOCK_SIZE
) -> Iterator[tuple[pa.Table, int]]:
    """Yield (table of normalised, typed columns, file line of its first row) per parse block.

    Date columns come back as date32, text columns dictionary-encoded. Only the layout's known,
    non-ignored columns are read.
    """
    path = Path(path)
    label = input_label(path, member)
    plan = plan_csv(path, member, layout, what)
    # one thread per file: imports parallelise over files, so each worker stays on its core
    read = pacsv.ReadOptions(column_names=plan.names, skip_rows=1, block_size=block_size, use_threads=False)
    line = 2
    try:
        with open_input(path, member) as stream:
            reader = pacsv.open_csv(stream, read_options=read, convert_options=convert_options(plan))
            for batch in reader:
                yield parse_dates(pa.Table.from_batches([batch]), plan, label, line), line
                line += batch.num_rows
    except pa.ArrowInvalid as exc:
        raise arrow_error(exc, path, member, plan, line) from None
    except (OSError, EOFError) as exc:
        raise ImportFileError(f"{label} after line {line}: {_io_reason(exc)}") from None


def convert_options(plan: CsvPlan) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(
        column_types={n: _arrow_type(plan, n) for n in plan.types},
        include_columns=list(plan.types),
        null_values=NULL_VALUES,
        strings_can_be_null=True,
    )


def arrow_error(exc: pa.ArrowInvalid, path: Path, member: str | None, plan: CsvPlan, line: int,
                row_one: int = 1) -> ImportFileError:
    """pyarrow's parse or conversion error in the block starting on `line`, with the file's line
    (`row_one`: the file line that pyarrow calls Row #1)."""
    label = input_label(path, member)
    if "conversion error" in str(exc):
        return ImportFileError(f"{label} {_locate_bad_value(path, member, plan, exc)}")
    row = _PARSE_ROW.search(str(exc))
    where = f"line {int(row.group(1)) + row_one - 1}: {row.group(2)}" if row else f"after line {line}: {exc}"
    return ImportFileError(f"{label} {where}")
