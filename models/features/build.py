"""Build the feature table of a dataset: ``DIR/features/underlying=S/year=YYYY.parquet``.

The expensive part, the per-day options aggregates, runs in parallel over date partitions
(one task per underlying and month) through any ``map``-like callable (a process pool, Dask on
Ray); it is also stored (``_raw/year=YYYY.parquet``) so that a later build computes only the days
not yet present. The history-dependent features are then recomputed over all days from the
stored aggregates, which is cheap and, every feature being causal, leaves the values of days
already written unchanged; only the years that gained days are rewritten (all years when the
set of regime labels changed, e.g. a new regime file). Every file is written under a temporary
name and renamed; the aggregates are written last, so an interrupted build recomputes the
missing days next time. Chains may be read from any URI the store reads; the feature table is
written to a local dataset directory.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from backtest.errors import UserError
from backtest.store import Dataset, StoreError, atomic_write_table, chain_arrays
from models import regimes
from models.features.options import daily_raw, missing_chain_columns
from models.features.table import MarketInputs, build_table

FEATURES_DIR = "features"
RAW_DIR = "_raw"
VIX_INDEX = "VIX"
LABELS_KEY = b"regime_labels"

Mapper = Callable[[Callable, Iterable], Iterable]


class MissingInputWarning(UserWarning):
    """An input (VIX, bars, a chain column) is absent; the features that need it are NaN."""


@dataclass(frozen=True)
class RawTask:
    """Compute the raw options aggregates of ``underlying`` for the given days (ISO dates)."""

    data: str
    underlying: str
    days: tuple[str, ...]


@dataclass(frozen=True)
class RawResult:
    underlying: str
    raw: pd.DataFrame
    missing_columns: tuple[str, ...]


def compute_raw(task: RawTask) -> RawResult:
    """Worker: read the task's days of chains and run the options kernel (plain in, plain out)."""
    ds = Dataset(task.data)
    table = ds.read_chains(task.underlying, task.days[0], task.days[-1])
    wanted = pa.array(pd.to_datetime(list(task.days)).date, pa.date32())
    table = table.filter(pc.is_in(table.column("quote_date"), value_set=wanted))
    chain = chain_arrays(table)
    return RawResult(task.underlying, daily_raw(chain), tuple(missing_chain_columns(chain)))


# --------------------------------------------------------------------------- reading / writing


def feature_dir(data: str | os.PathLike, underlying: str) -> Path:
    return Path(data) / FEATURES_DIR / f"underlying={underlying}"


def _read_parquet_dir(path: Path) -> pd.DataFrame:
    files = sorted(path.glob("year=*.parquet"))
    if not files:
        return pd.DataFrame(index=pd.DatetimeIndex([], name="date"))
    df = pa.concat_tables([pq.read_table(p) for p in files], promote_options="permissive").to_pandas()
    df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("date")), name="date")
    return df.drop(columns=["underlying"], errors="ignore").sort_index()


def _stored_labels(data: str | os.PathLike, underlying: str) -> dict:
    files = sorted(feature_dir(data, underlying).glob("year=*.parquet"))
    if not files:
        return {}
    meta = pq.read_schema(files[-1]).metadata or {}
    return json.loads(meta.get(LABELS_KEY, b"{}"))


def read_feature_table(data: str | os.PathLike, underlying: str) -> pd.DataFrame:
    """The stored feature table of one underlying, indexed by date, with the regime labels of
    each classifier in ``.attrs["regime_labels"]`` (classifier -> list of labels by code)."""
    path = feature_dir(data, underlying)
    table = _read_parquet_dir(path)
    if table.empty:
        raise UserError(f"{path}: no feature table (run `osd features build --data {data}`)")
    table.attrs["regime_labels"] = _stored_labels(data, underlying)
    return table


def _write_years(df: pd.DataFrame, path: Path, years: Iterable[int], underlying: str | None, meta: dict) -> None:
    for year in sorted(years):
        part = df[df.index.year == year]
        out = part.reset_index()
        out["date"] = out["date"].dt.date
        if underlying is not None:
            out.insert(0, "underlying", underlying)
        table = pa.Table.from_pandas(out, preserve_index=False)
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
        atomic_write_table(table, path / f"year={year}.parquet")


# --------------------------------------------------------------------------- inputs


def _bars(ds: Dataset, underlying: str) -> pd.DataFrame | None:
    try:
        t = ds.read_underlying(underlying).to_pandas()
    except StoreError:
        return None
    t.index = pd.DatetimeIndex(pd.to_datetime(t.pop("date")), name="date")
    return t


def _vix(ds: Dataset, underlying: str) -> pd.Series | None:
    """The underlying's own volatility index (``VIX_<SYM>``, as the synthetic market writes for
    symbols other than SPY) if present, else ``VIX``."""
    names = [n for n in (f"{VIX_INDEX}_{underlying}", VIX_INDEX) if n in ds.indices]
    if not names:
        return None
    t = ds.read_index(names[0]).to_pandas()
    return pd.Series(t["close"].to_numpy(float), index=pd.DatetimeIndex(pd.to_datetime(t["date"]), name="date"))


def supplied_regimes(ds: Dataset, underlying: str, user_file: str | None = None) -> dict:
    """Regime tables found for ``underlying``: the user's (``--regimes`` or
    DIR/regime_assignments.parquet) as classifier ``user``; the dataset's own regime table
    (DIR/regimes/underlying=S/) as ``synthetic`` when the synthetic market wrote it (its ground
    truth), else as ``dataset``."""
    found = {}
    table = ds.read_regimes(underlying)
    if table is not None:
        name = "synthetic" if "generator" in ds.meta else "dataset"
        found[name] = regimes.regime_codes(table, f"{ds.uri}/regimes/underlying={underlying}", underlying)
    user = Path(user_file) if user_file else Path(ds.uri) / regimes.REGIME_ASSIGNMENTS
    if user_file and not user.exists():
        raise UserError(f"{user}: regime assignments file not found")
    if user.exists():
        found["user"] = regimes.load_regime_assignments(user, underlying)
    return found


def _chain_days(ds: Dataset, underlying: str) -> pd.DatetimeIndex:
    dates = ds.read_chains(underlying, columns=["quote_date"]).column("quote_date")
    return pd.DatetimeIndex(pd.to_datetime(pc.unique(dates).to_numpy(zero_copy_only=False))).sort_values()


def plan_tasks(data: str, underlying: str, days: pd.DatetimeIndex) -> list[RawTask]:
    """One task per calendar month of the days to compute."""
    months = days.to_period("M")
    return [RawTask(data, underlying, tuple(d.strftime("%Y-%m-%d") for d in days[months == m]))
            for m in months.unique()]


# --------------------------------------------------------------------------- build


@dataclass(frozen=True)
class BuildSummary:
    underlying: str
    days_total: int
    days_computed: int
    years_written: tuple[int, ...]
    missing: tuple[str, ...]  # warning messages


def build_features(data: str | os.PathLike, *, mapper: Mapper = map, rebuild: bool = False,
                   regimes_file: str | None = None, progress: Callable[[int], None] | None = None,
                   on_plan: Callable[[int], None] | None = None,
                   underlyings: Iterable[str] | None = None) -> list[BuildSummary]:
    """Build or extend the feature table of every underlying in the dataset at ``data`` (or of
    those in ``underlyings``).

    ``mapper(fn, tasks)`` runs the raw-aggregate tasks (builtin ``map`` runs them here, in order);
    ``on_plan(n)`` is told the number of tasks and ``progress(1)`` is called as each one ends.
    """
    data = str(data)
    ds = Dataset(data)
    pending: dict[str, pd.DataFrame] = {}
    tasks: list[RawTask] = []
    for u in ds.underlyings if underlyings is None else underlyings:
        stored = _read_parquet_dir(feature_dir(data, u) / RAW_DIR)
        if rebuild:
            stored = stored.iloc[:0]
        pending[u] = stored
        new_days = _chain_days(ds, u).difference(stored.index)
        tasks += plan_tasks(data, u, new_days)
    if on_plan:
        on_plan(len(tasks))
    new_raw: dict[str, list[pd.DataFrame]] = {u: [] for u in pending}
    missing_cols: dict[str, set[str]] = {u: set() for u in pending}
    for result in mapper(compute_raw, tasks):
        new_raw[result.underlying].append(result.raw)
        missing_cols[result.underlying].update(result.missing_columns)
        if progress:
            progress(1)
    summaries = []
    for u, stored in pending.items():
        added = [r for r in new_raw[u] if len(r)]
        supplied = supplied_regimes(ds, u, regimes_file)
        # a changed set of supplied regime tables or labels re-encodes every stored year
        labels_now = {**{k: list(v) for k, v in regimes.FIXED_LABELS.items()},
                      **{k: list(names) for k, (_, names) in supplied.items()}}
        relabel = len(stored) > 0 and labels_now != _stored_labels(data, u)
        if not added and not relabel:
            summaries.append(BuildSummary(u, len(stored), 0, (), ()))
            continue
        fresh = pd.concat(added).sort_index() if added else stored.iloc[:0]
        raw = pd.concat([stored, fresh]).sort_index() if len(stored) else fresh
        inputs = MarketInputs(bars=_bars(ds, u), vix=_vix(ds, u), missing_chain_columns=tuple(sorted(missing_cols[u])),
                              supplied_regimes=supplied)
        table, labels, missing = build_table(raw, inputs)
        messages = tuple(m.message(u) for m in missing)
        for msg in messages:
            warnings.warn(msg, MissingInputWarning, stacklevel=2)
        years = tuple(sorted(set((raw if relabel else fresh).index.year)))
        out = feature_dir(data, u)
        _write_years(table, out, years, u, {LABELS_KEY: json.dumps(labels).encode()})
        _write_years(raw, out / RAW_DIR, years, None, {})
        summaries.append(BuildSummary(u, len(raw), len(fresh), years, messages))
    return summaries

