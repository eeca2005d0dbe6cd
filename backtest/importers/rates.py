"""Interest rate and dividend yield assumptions for implied volatility and greeks.

Either constants (``--rate R --dividend-yield Q``) or a rates file (``--rates FILE``): a CSV with a
header ``date,rate`` or ``date,rate,dividend_yield``, ISO dates (YYYY-MM-DD), rates as
continuously compounded annual decimals (0.0215 = 2.15%), e.g.::

    date,rate,dividend_yield
    2019-01-02,0.0240,0.0190
    2019-06-03,0.0230,0.0195

Each row applies from its date until the next row (as-of lookup: a quote date uses the last row
on or before it, never a later one). Without a dividend_yield column it is taken as 0, or as
``--dividend-yield`` when that is given too. A quote date before the first row is an error.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from backtest.errors import UserError


@dataclass(frozen=True)
class RateSchedule:
    """Step functions of rate and dividend yield over dates (days since 1970-01-01)."""

    days: tuple[int, ...]
    rates: tuple[float, ...]
    yields: tuple[float, ...]
    origin: str  # what the numbers came from, for the dataset's source record

    @classmethod
    def constant(cls, rate: float = 0.0, dividend_yield: float = 0.0) -> "RateSchedule":
        for name, v in (("--rate", rate), ("--dividend-yield", dividend_yield)):
            if not np.isfinite(v) or abs(v) > 1.0:
                raise UserError(f"{name} {v}: expected a decimal annual rate such as 0.02 (between -1 and 1)")
        return cls((np.iinfo(np.int32).min,), (float(rate),), (float(dividend_yield),),
                   f"constant rate={rate} dividend_yield={dividend_yield}")

    @classmethod
    def from_file(cls, path: str | Path, dividend_yield: float | None = None) -> "RateSchedule":
        path = Path(path)
        try:
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                column_types={"date": pa.date32(), "rate": pa.float64(), "dividend_yield": pa.float64()}))
        except (pa.ArrowInvalid, OSError) as exc:
            raise UserError(f"{path}: cannot read the rates file ({exc}); expected CSV "
                            "date,rate[,dividend_yield] with ISO dates and decimal rates") from None
        names = set(table.column_names)
        if not {"date", "rate"} <= names or names - {"date", "rate", "dividend_yield"}:
            raise UserError(f"{path} line 1: columns {table.column_names}, expected date,rate[,dividend_yield]")
        if table.num_rows == 0:
            raise UserError(f"{path}: no rows, expected at least one date,rate row")
        days = table.column("date").cast(pa.int32()).to_numpy(zero_copy_only=False)
        rates = table.column("rate").to_numpy(zero_copy_only=False).astype(float)
        if "dividend_yield" in names:
            yields = table.column("dividend_yield").to_numpy(zero_copy_only=False).astype(float)
        else:
            yields = np.full(len(days), 0.0 if dividend_yield is None else dividend_yield)
        for name, values in (("rate", rates), ("dividend_yield", yields)):
            bad = np.flatnonzero(~np.isfinite(values) | (np.abs(values) > 1.0))
            if len(bad):
                raise UserError(f"{path} line {bad[0] + 2}: {name} {float(values[bad[0]])} is not a decimal annual "
                                "rate between -1 and 1 (write 2% as 0.02)")
        order = np.argsort(days, kind="stable")
        dupes = np.flatnonzero(np.diff(days[order]) == 0)
        if len(dupes):
            raise UserError(f"{path}: date {dt.date(1970, 1, 1) + dt.timedelta(int(days[order][dupes[0]]))} "
                            "appears twice, expected one row per date")
        return cls(tuple(days[order].tolist()), tuple(rates[order].tolist()), tuple(yields[order].tolist()),
                   f"rates file {path.name}")

    def lookup(self, quote_days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rate, dividend yield) in force on each quote date."""
        idx = np.searchsorted(np.asarray(self.days), quote_days, side="right") - 1
        if len(idx) and idx.min() < 0:
            first = dt.date(1970, 1, 1) + dt.timedelta(days=self.days[0])
            early = dt.date(1970, 1, 1) + dt.timedelta(days=int(quote_days[idx < 0].min()))
            raise UserError(f"{self.origin}: starts on {first}, after quote date {early}; "
                            "expected a rate in force on every quote date")
        return np.asarray(self.rates)[idx], np.asarray(self.yields)[idx]
