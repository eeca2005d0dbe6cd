"""The import pipeline: vendor files -> validated canonical rows -> the store, atomically.

Each input file is one task (:func:`import_file`, run in a worker process or a Ray task). It
streams the file block by block, fills in IV and greeks (backtest.importers.greeks) and
validates each block of whole quote days with one call to ``backtest.validate.validate_rows``,
passing on the previous call's last days so that a stale underlying is caught across the days
of a file (checks across files, such as a stale price in the next day's file, are left to
``osd data validate``). It writes its parts into a staging directory: chain rows per
(file, year) as ``chains/underlying=U/year=Y/<part>.parquet`` (sorted as DESIGN §3.1
requires), one underlying bar per quote date as ``underlyings/underlying=U/<part>-<year>.parquet``
(close = the file's underlying price on that date, first value seen; open/high/low/volume
empty), and quarantined rows as ``quarantine/<part>.parquet``. ``<part>`` is derived from the
input file name, so importing the same file again replaces its parts (idempotent) and a new
file adds parts (append).

Only when every task has succeeded are the staged parts moved into the store (a new store via
backtest.store.DatasetWriter, an existing one by renaming each part into place and then
rewriting dataset.json atomically); a failure removes the staging directory and leaves the
store as it was. Row accounting is checked per file: imported + quarantined == rows read.

Memory per worker is bounded by one parse block, one quote day held back between blocks, and
the largest (file, year) part, which is held in memory until it is written. Validation hands
over each block's good rows in store order, so a part is written as collected; only a part whose
blocks came out of date order is sorted first.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from backtest.errors import UserError
from backtest.importers import FormatSpec
from backtest.importers.common import Chunk
from backtest.importers.greeks import add_greeks
from backtest.importers.rates import RateSchedule
from backtest.importers.source import ImportFileError, input_label, zip_members
from backtest.schema import BAR_SCHEMA, QUARANTINE_SCHEMA, conform
from backtest.store import (
    CHAIN_DICTIONARY_COLUMNS,
    CHAIN_STATISTICS_COLUMNS,
    DATASET_JSON,
    Dataset,
    DatasetWriter,
    StoreError,
    atomic_write_json,
    date_days,
    sort_chains,
)
from backtest.validate import validate_rows

_SUFFIXES = (".gz", ".zip", ".csv", ".txt", ".parquet", ".pq")
# the store's choice of dictionary and statistics columns; LZ4: on the SPX sample it writes as
# fast as snappy and ~1.5x faster than zstd level 1, for files 4% smaller than snappy's (~25%
# larger than zstd's) that read ~1.3x faster than snappy's; uncompressed writes ~1.4x faster
# still but files are 2.6x larger (BENCHMARKS.md, importers)
PARQUET_OPTIONS = {"compression": "lz4", "use_dictionary": CHAIN_DICTIONARY_COLUMNS,
                   "write_statistics": CHAIN_STATISTICS_COLUMNS}


@dataclass(frozen=True)
class FileTask:
    """Everything one worker needs for one input file (plain, picklable data)."""

    path: str
    part: str
    spec: FormatSpec
    rates: RateSchedule
    recompute_greeks: bool
    staging: str


@dataclass(frozen=True)
class FileReport:
    path: str
    part: str
    underlyings: tuple[str, ...]
    input_records: int  # CSV records (an OptionsDX record holds a call and a put)
    input_rows: int  # option rows read
    imported: int
    quarantined: dict[str, int]  # reason -> rows
    mid_violations: dict[str, int]  # static arbitrage at mid prices: counted, not quarantined
    files: tuple[str, ...]  # staged files, relative to the staging directory


@dataclass
class ImportSummary:
    out: str
    files: int = 0
    input_records: int = 0
    input_rows: int = 0
    imported: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    mid_violations: dict[str, int] = field(default_factory=dict)

    @property
    def quarantined_rows(self) -> int:
        return sum(self.quarantined.values())

    def add(self, report: FileReport) -> None:
        self.files += 1
        self.input_records += report.input_records
        self.input_rows += report.input_rows
        self.imported += report.imported
        _add_counts(self.quarantined, report.quarantined)
        _add_counts(self.mid_violations, report.mid_violations)


def part_name(path: str | Path) -> str:
    """Deterministic part name of an input file: its name without data/compression suffixes."""
    name = Path(path).name
    while name.lower().endswith(_SUFFIXES):
        name = name[: name.rfind(".")]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "part"


def whole_days(chunks: Iterable[Chunk], label: str) -> Iterator[tuple[pa.Table, int]]:
    """Re-cut parse blocks so that each holds whole quote days, since validation checks a day's
    rows together (duplicates, spreads): the rows of a block's last quote date wait for the next
    block. Yields (rows, CSV records read since the previous yield). A file must keep each quote
    date's rows together; a date that comes back after others is an error naming its line."""
    pending: pa.Table | None = None
    done: set[int] = set()
    records = 0
    for chunk in chunks:
        days = date_days(chunk.chain.column("quote_date"))
        records += chunk.input_records
        if not len(days):
            continue
        back = np.isin(days, np.fromiter(done, np.int32, len(done)))
        if back.any():
            row = int(np.flatnonzero(back)[0])
            raise ImportFileError(
                f"{label} line {chunk.first_line + row % chunk.input_records}: quote date "
                f"{dt.date(1970, 1, 1) + dt.timedelta(days=int(days[row]))} appears again after other dates; "
                "expected each quote date's rows together (sort the file by quote date)")
        table = chunk.chain if pending is None else pa.concat_tables([pending, chunk.chain])
        all_days = date_days(table.column("quote_date"))
        last_day = all_days == days[-1]
        first_of_last = int(np.argmax(last_day))
        if last_day[first_of_last:].all():  # the last day's rows are the tail: cut without copying
            pending, ready = table.slice(first_of_last), table.slice(0, first_of_last)
        else:  # e.g. OptionsDX blocks: a block's calls, then its puts
            pending, ready = table.filter(pa.array(last_day)), table.filter(pa.array(~last_day))
        if ready.num_rows:
            done.update(int(d) for d in np.unique(all_days[~last_day]))
            yield ready, records
            records = 0
    if pending is not None:
        yield pending, records


def _run_starts(values: np.ndarray) -> np.ndarray:
    """Where each run of equal values starts."""
    change = np.empty(len(values), bool)
    change[:1] = True
    np.not_equal(values[1:], values[:-1], out=change[1:])
    return np.flatnonzero(change)


class _PartWriter:
    """Collects one file's validated rows per (underlying, year) and writes the parts."""

    def __init__(self, staging: Path, part: str):
        self.staging, self.part = staging, part
        self.chains: dict[tuple[str, int], list[pa.Table]] = {}
        self.last_day: dict[tuple[str, int], int] = {}  # the latest quote date collected
        self.unsorted: set[tuple[str, int]] = set()  # parts whose blocks came out of date order
        self.quarantine_writer: pq.ParquetWriter | None = None
        self.closes: dict[tuple[str, int], float] = {}  # (underlying, date days) -> first close
        self.files: list[Path] = []

    def write_chain(self, good: pa.Table) -> None:
        """Collect validated rows, in store order (``validate_rows(store_order=True)``)."""
        if not good.num_rows:
            return
        underlying = good.column("underlying")[0].as_py()  # a block holds one underlying (one per file)
        days = date_days(good.column("quote_date"))
        starts = _run_starts(days)  # a day's rows are one run (store order): years of the runs only
        run_years = days[starts].astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
        distinct = np.unique(run_years)
        years = run_years if len(distinct) == 1 else np.repeat(run_years, np.diff(np.append(starts, len(days))))
        for year in distinct:
            part, in_year = (good, days) if len(distinct) == 1 else (
                good.filter(pa.array(years == year)), days[years == year])
            key = (underlying, int(year))
            self.chains.setdefault(key, []).append(part)
            # a block of later days extends the store order; one of earlier days needs a sort at close
            first, last = int(in_year[0]), int(in_year[-1])
            if key in self.last_day and first <= self.last_day[key]:
                self.unsorted.add(key)
            self.last_day[key] = max(last, self.last_day.get(key, last))

    def write_closes(self, chain: pa.Table, good: np.ndarray) -> None:
        """Note each quote date's close: the underlying price of its first good row (input order)."""
        if not good.any():
            return
        underlying = chain.column("underlying")[0].as_py()
        days = date_days(chain.column("quote_date"))[good]
        spot = chain.column("underlying_price").to_numpy(zero_copy_only=False)[good]
        starts = _run_starts(days)  # a day's first row starts a run: only those are compared
        _, first = np.unique(days[starts], return_index=True)
        for i in starts[first]:
            self.closes.setdefault((underlying, int(days[i])), float(spot[i]))

    def write_quarantine(self, rows: pa.Table) -> None:
        if not rows.num_rows:
            return
        if self.quarantine_writer is None:
            path = self.staging / "quarantine" / f"{self.part}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.quarantine_writer = pq.ParquetWriter(path, QUARANTINE_SCHEMA, compression="zstd")
            self.files.append(path)
        self.quarantine_writer.write_table(conform(rows, QUARANTINE_SCHEMA))

    def close(self) -> None:
        if self.quarantine_writer is not None:
            self.quarantine_writer.close()
        for (u, year), tables in self.chains.items():
            path = self.staging / "chains" / f"underlying={u}" / f"year={year}" / f"{self.part}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            rows = pa.concat_tables(tables)
            pq.write_table(sort_chains(rows) if (u, year) in self.unsorted else rows, path, **PARQUET_OPTIONS)
            self.files.append(path)
        by_part: dict[tuple[str, int], list[tuple[int, float]]] = {}
        for (u, days), close in self.closes.items():
            year = (dt.date(1970, 1, 1) + dt.timedelta(days=days)).year
            by_part.setdefault((u, year), []).append((days, close))
        for (u, year), rows in by_part.items():
            rows.sort()
            path = self.staging / "underlyings" / f"underlying={u}" / f"{self.part}-{year}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            bars = pa.table({"date": pa.array([d for d, _ in rows], pa.int32()).cast(pa.date32()),
                             "close": pa.array([c for _, c in rows], pa.float64())})
            pq.write_table(conform(bars, BAR_SCHEMA), path)
            self.files.append(path)


def import_file(task: FileTask) -> FileReport:
    """Import one input file into the staging directory (runs in a worker)."""
    path = Path(task.path)
    fmt = task.spec.build()
    members = zip_members(path) if path.name.lower().endswith(".zip") else [None]
    staging = Path(task.staging)
    writer = _PartWriter(staging, task.part)
    records = rows = imported = 0
    quarantined: dict[str, int] = {}
    mid_violations: dict[str, int] = {}
    try:
        for member in members:
            label = input_label(path.name, member)
            previous_days = None  # lets the stale-underlying check look across days of the file
            for chain, n_records in whole_days(fmt.chunks(path, member), input_label(path, member)):
                chain = add_greeks(chain, task.rates, task.recompute_greeks)
                result = validate_rows(chain, source=label, previous_days=previous_days, store_order=True)
                previous_days = result.last_days
                writer.write_chain(result.good)
                writer.write_closes(chain, result.good_mask)
                writer.write_quarantine(result.quarantined)
                records += n_records
                rows += chain.num_rows
                imported += result.good.num_rows
                _add_counts(quarantined, result.counts)
                _add_counts(mid_violations, result.mid_violations)
    finally:
        writer.close()
    if imported + sum(quarantined.values()) != rows:
        raise RuntimeError(f"{path}: row accounting broken: {imported} imported + "
                           f"{sum(quarantined.values())} quarantined != {rows} read")
    underlyings = tuple(sorted({u for u, _ in writer.chains} | {u for u, _ in writer.closes}))
    return FileReport(str(path), task.part, underlyings, records, rows, imported, quarantined, mid_violations,
                      tuple(str(f.relative_to(staging)) for f in writer.files))


def _add_counts(total: dict[str, int], counts: dict[str, int]) -> None:
    for key, n in counts.items():
        if n:
            total[key] = total.get(key, 0) + int(n)


# --------------------------------------------------------------------------- executors

Executor = Callable[[list[FileTask]], Iterator[FileReport]]


def _one_thread_per_worker() -> None:
    """Workers already use every core between them; threads inside each would oversubscribe."""
    import numba

    numba.set_num_threads(1)
    pa.set_cpu_count(1)


def local_executor(workers: int) -> Executor:
    """Run tasks in `workers` local processes (in this process when workers == 1)."""

    def run(tasks: list[FileTask]) -> Iterator[FileReport]:
        if workers <= 1 or len(tasks) <= 1:
            yield from map(import_file, tasks)
            return
        import concurrent.futures as cf
        import multiprocessing

        # spawn: fresh interpreters, no forked copies of the parent's threads (numba, pyarrow)
        with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                    initializer=_one_thread_per_worker) as pool:
            futures = [pool.submit(import_file, t) for t in tasks]
            try:
                for future in cf.as_completed(futures):
                    yield future.result()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

    return run


# --------------------------------------------------------------------------- store update


def _chain_stats(files: list[Path]) -> dict:
    rows, start, end = 0, None, None
    for f in files:
        meta = pq.read_metadata(f)
        rows += meta.num_rows
        idx = meta.schema.to_arrow_schema().get_field_index("quote_date")
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(idx).statistics
            if stats is not None and stats.has_min_max:
                start = min(filter(None, [start, stats.min]))
                end = max(filter(None, [end, stats.max]))
    return {"rows": rows, "start": start.isoformat() if start else None, "end": end.isoformat() if end else None}


def refresh_meta(root: Path, meta: dict) -> dict:
    """Recompute dataset.json's per-underlying row counts/spans and quarantine counts from the
    files themselves (Parquet footers and the quarantine reasons), so they stay exact across
    appends and re-imports."""
    meta = dict(meta)
    underlyings = dict(meta.get("underlyings", {}))
    for udir in sorted((root / "chains").glob("underlying=*")):
        files = sorted(p for p in udir.glob("year=*/*.parquet") if not p.name.startswith("."))
        symbol = udir.name.split("=", 1)[1]
        underlyings[symbol] = {**underlyings.get(symbol, {}), **_chain_stats(files)}
    meta["underlyings"] = underlyings
    reasons: dict[str, int] = {}
    qfiles = sorted(p for p in (root / "quarantine").glob("*.parquet") if not p.name.startswith("."))
    for f in qfiles:
        for item in pc.value_counts(pq.read_table(f, columns=["reason"]).column("reason")).to_pylist():
            reasons[item["values"]] = reasons.get(item["values"], 0) + item["counts"]
    meta["quarantine"] = {"rows": sum(reasons.values()), "reasons": reasons}
    return meta


def _record(meta: dict, reports: list[FileReport], source: dict) -> None:
    imports = meta.setdefault("imports", {})
    for r in reports:
        imports[r.part] = {"file": Path(r.path).name, "format": source["format"], "input_rows": r.input_rows,
                           "imported": r.imported, "quarantined": r.quarantined,
                           "mid_violations": r.mid_violations}
    if source not in meta["sources"]:
        meta["sources"].append(source)


def _replace_parts(out: Path, staging: Path, reports: list[FileReport]) -> None:
    """Move staged parts into the store; drop earlier versions of the same parts that the new
    import no longer produces (e.g. a year that left the file)."""
    new = {rel for r in reports for rel in r.files}
    stale = set()
    for r in reports:
        for pattern in (f"chains/underlying=*/year=*/{r.part}.parquet", f"underlyings/underlying=*/{r.part}-*.parquet",
                        f"quarantine/{r.part}.parquet"):
            stale |= {str(p.relative_to(out)) for p in out.glob(pattern)}
    for rel in sorted(new):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, out / rel)
    for rel in sorted(stale - new):
        (out / rel).unlink()


def _run(tasks: list[FileTask], executor: Executor, progress) -> list[FileReport]:
    reports = []
    for report in executor(tasks):
        reports.append(report)
        if progress is not None:
            progress(report)
    return reports


def import_files(
    inputs: Iterable[str | Path],
    out: str | Path,
    spec: FormatSpec,
    rates: RateSchedule,
    *,
    recompute_greeks: bool = False,
    executor: Executor | None = None,
    progress: Callable[[FileReport], None] | None = None,
) -> ImportSummary:
    """Import `inputs` into the dataset at `out` (created if it does not exist)."""
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise UserError("no input files given")
    parts: dict[str, Path] = {}
    for p in inputs:
        if not p.is_file():
            raise ImportFileError(f"{p}: no such file")
        name = part_name(p)
        if name in parts and parts[name] != p:
            raise UserError(f"{p} and {parts[name]} would both be stored as part {name!r}; "
                            "input file names must differ once their suffixes are removed")
        parts[name] = p
    out = Path(out)
    executor = executor or local_executor(1)
    source = {"kind": "import", "format": spec.name, "greeks": "recomputed" if recompute_greeks else "vendor",
              "rates": rates.origin}
    if spec.name == "cboe":
        source["quotes"] = spec.cboe_quotes

    def tasks(staging: Path) -> list[FileTask]:
        return [FileTask(str(p), name, spec, rates, recompute_greeks, str(staging)) for name, p in parts.items()]

    summary = ImportSummary(str(out))
    if (out / DATASET_JSON).exists():
        meta = Dataset(out).meta  # checks the schema version
        staging = out / f".import-{uuid.uuid4().hex}.staging"
        staging.mkdir()
        try:
            reports = _run(tasks(staging), executor, progress)
            _replace_parts(out, staging, reports)
            meta = refresh_meta(out, meta)
            _record(meta, reports, source)
            atomic_write_json(meta, out / DATASET_JSON)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    else:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise StoreError(f"{out}: exists but is not a dataset (no {DATASET_JSON}); "
                             "import into a new or empty directory, or into an existing dataset")
        with DatasetWriter(out, overwrite=out.exists()) as writer:
            reports = _run(tasks(writer.tmp), executor, progress)
            writer.meta = refresh_meta(writer.tmp, writer.meta)
            _record(writer.meta, reports, source)
    for r in reports:
        summary.add(r)
    return summary

