"""A compact, read-only chain index of one underlying for the backtest kernels.

Rows are sorted by (quote_date, expiration, root, right with calls first, strike) and stored as
four float32 columns (strike, bid, ask, delta) and a link to the same contract's row on the next
day (int32): 20 bytes a row; offset tables locate each day's expiration groups and each group's
call and put rows. Everything is a plain numpy array, so the
index pickles into Ray's object store and the kernels read it without copying (they never write
to it).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from backtest.errors import UserError
from backtest import index_nb
from backtest.store import ChainArrays, Dataset, chain_columns, chain_fields, date_to_days, is_sorted_by, to_date

_EPOCH = np.datetime64("1970-01-01", "D")
# the ChainArrays fields an index is built from (the other chain columns are never read for it)
INDEX_FIELDS = ("quote_date", "expiration", "strike", "is_call", "root", "roots", "european", "bid", "ask", "delta",
                "underlying_price")


@dataclass(frozen=True)
class ChainIndex:
    underlying: str
    days: np.ndarray  # int32 [n_days], days since 1970-01-01, ascending
    close: np.ndarray  # float64 [n_days], underlying close (settlement and margin reference)
    day_group_start: np.ndarray  # int64 [n_days + 1], groups of day d: [start[d], start[d+1])
    group_expiration: np.ndarray  # int32 [n_groups], ascending within a day
    group_root: np.ndarray  # int16 [n_groups], code into `roots`
    group_european: np.ndarray  # bool [n_groups]
    group_row_start: np.ndarray  # int64 [n_groups + 1], calls then puts
    group_put_start: np.ndarray  # int64 [n_groups], first put row of the group
    group_monotone: np.ndarray  # uint8 [n_groups], bit 0: calls' |delta| never rises with strike,
    # bit 1: puts' |delta| never falls with strike (no NaN either); lets the kernel binary-search
    strike: np.ndarray  # float32 [n_rows], ascending within (group, right)
    bid: np.ndarray  # float32 [n_rows]
    ask: np.ndarray  # float32 [n_rows]
    delta: np.ndarray  # float32 [n_rows], NaN when unknown (never selected by delta)
    next_row: np.ndarray  # int32/int64 [n_rows], the same contract's row on the next day, or -1
    roots: tuple[str, ...] = ()
    dropped_rows: int = 0  # rows unusable for trading (bad quote, duplicate key, expired)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dataset(
        cls,
        data: str | Dataset,
        underlying: str,
        start: str | dt.date | None = None,
        end: str | dt.date | None = None,
    ) -> "ChainIndex":
        """Index one underlying's chains in [start, end]; closes come from the dataset's
        underlying bars where it has them, else from the chains' underlying_price."""
        dataset = data if isinstance(data, Dataset) else Dataset(data)
        table = dataset.read_chains(underlying, start, end, columns=chain_columns(INDEX_FIELDS))
        arrays = SimpleNamespace(**chain_fields(table, INDEX_FIELDS))
        if not len(arrays.quote_date):
            span = f" between {start or 'the start'} and {end or 'the end'}"
            raise UserError(f"{dataset.uri}: no {underlying} option chains{span}")
        try:
            bars = dataset.read_underlying(underlying).to_pandas()
            closes = pd.Series(bars["close"].to_numpy(), index=pd.to_datetime(bars["date"]))
        except UserError:
            closes = None
        return cls.from_arrays(arrays, closes, underlying=underlying)

    @classmethod
    def from_arrays(
        cls, arrays: ChainArrays, closes: pd.Series | None = None, underlying: str = ""
    ) -> "ChainIndex":
        """Build from store columns: a ChainArrays, or anything with its INDEX_FIELDS. ``closes``:
        underlying close by date (any date-like index); days it lacks fall back to the day's first
        chain ``underlying_price``."""
        a = arrays
        if not len(a.quote_date):
            raise UserError(f"no option chain rows for {underlying or 'the underlying'}")
        usable = (
            np.isfinite(a.bid) & np.isfinite(a.ask) & (a.bid >= 0) & (a.bid <= a.ask)
            & np.isfinite(a.strike) & (a.strike > 0) & (a.expiration >= a.quote_date)
        )
        order = np.flatnonzero(usable)
        qd, ex, rt, call, strike = (x[order] for x in (a.quote_date, a.expiration, a.root, a.is_call, a.strike))
        keys = (qd, ex, rt, ~call, strike)
        if not is_sorted_by(keys):  # the store's files come sorted by day, expiration, right and strike
            by_key = np.lexsort(keys[::-1])
            order, qd, ex, rt, call, strike = (x[by_key] for x in (order, qd, ex, rt, call, strike))
        strike = strike.astype(np.float32)
        # duplicate contract keys: keep the first row
        same = np.zeros(len(order), dtype=bool)
        same[1:] = (qd[1:] == qd[:-1]) & (ex[1:] == ex[:-1]) & (rt[1:] == rt[:-1]) & (
            call[1:] == call[:-1]) & (strike[1:] == strike[:-1])
        keep = ~same
        order, qd, ex, rt, call, strike = (x[keep] for x in (order, qd, ex, rt, call, strike))
        n = len(order)
        if not n:
            raise UserError(f"no usable option chain rows for {underlying or 'the underlying'}")

        new_day = np.ones(n, dtype=bool)
        new_day[1:] = qd[1:] != qd[:-1]
        new_group = new_day.copy()
        new_group[1:] |= (ex[1:] != ex[:-1]) | (rt[1:] != rt[:-1])
        day_rows = np.flatnonzero(new_day)
        group_rows = np.flatnonzero(new_group)
        days = qd[day_rows].astype(np.int32)
        group_row_start = np.append(group_rows, n).astype(np.int64)
        day_group_start = np.append(np.searchsorted(group_rows, day_rows), len(group_rows)).astype(np.int64)
        # calls come first in a group: the first put is after the group's call count
        group_id = np.cumsum(new_group) - 1
        calls_per_group = np.bincount(group_id, weights=call, minlength=len(group_rows)).astype(np.int64)
        group_put_start = group_row_start[:-1] + calls_per_group

        # link each row to the same contract's row on the next trading day (O(1) daily marks)
        next_row = index_nb.links(np.append(day_rows, n), ex, rt, (~call).view(np.uint8), strike)

        # which sides are monotone in |delta| (then selection by delta is a binary search)
        abs_delta = np.abs(a.delta[order].astype(np.float32))
        side = 2 * group_id + (~call)  # calls (0) before puts (1) within a group
        bad = np.isnan(abs_delta)
        step = np.zeros(n, dtype=bool)  # row r breaks monotonicity with row r - 1 of its side
        same_side = side[1:] == side[:-1]
        step[1:] = same_side & np.where(call[1:], abs_delta[1:] > abs_delta[:-1], abs_delta[1:] < abs_delta[:-1])
        broken = np.bincount(side, weights=bad | step, minlength=2 * len(group_rows)).reshape(-1, 2) > 0
        group_monotone = (~broken[:, 0]).astype(np.uint8) | ((~broken[:, 1]).astype(np.uint8) << 1)

        spot = a.underlying_price[order][day_rows].astype(np.float64)
        if closes is not None and len(closes):
            by_day = pd.Series(
                np.asarray(closes, dtype=np.float64),
                index=(pd.to_datetime(closes.index).values.astype("datetime64[D]") - _EPOCH).astype(np.int64),
            )
            by_day = by_day[~by_day.index.duplicated()]
            known = by_day.reindex(days.astype(np.int64)).to_numpy()
            spot = np.where(np.isfinite(known), known, spot)
        return cls(
            underlying=underlying,
            days=days,
            close=spot,
            day_group_start=day_group_start,
            group_expiration=ex[group_rows].astype(np.int32),
            group_root=rt[group_rows].astype(np.int16),
            group_european=a.european[order][group_rows].astype(bool),
            group_row_start=group_row_start,
            group_put_start=group_put_start,
            group_monotone=group_monotone,
            strike=strike,
            bid=a.bid[order].astype(np.float32),
            ask=a.ask[order].astype(np.float32),
            delta=a.delta[order].astype(np.float32),
            next_row=next_row,
            roots=tuple(a.roots),
            dropped_rows=int(len(a.quote_date) - n),
        )

    # ------------------------------------------------------------------ access
    @property
    def n_rows(self) -> int:
        return len(self.strike)

    @property
    def n_days(self) -> int:
        return len(self.days)

    @property
    def dates(self) -> np.ndarray:
        """Trading days as numpy datetime64[D]."""
        return _EPOCH + self.days.astype("timedelta64[D]")

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in fields(self) if isinstance(getattr(self, f.name), np.ndarray))

    def day_range(self, start: Any = None, end: Any = None) -> tuple[int, int]:
        """Half-open range [i0, i1) of day positions with start <= day <= end."""
        start, end = to_date(start, "start"), to_date(end, "end")
        i0 = 0 if start is None else int(np.searchsorted(self.days, date_to_days(start), "left"))
        i1 = self.n_days if end is None else int(np.searchsorted(self.days, date_to_days(end), "right"))
        if i1 <= i0:
            raise UserError(
                f"no {self.underlying or 'option'} chains between {start or 'the start'} and "
                f"{end or 'the end'} (index covers {self.dates[0]} to {self.dates[-1]})"
            )
        return i0, i1

    def set_read_only(self) -> "ChainIndex":
        """Mark every array non-writeable (as they are when read from Ray's object store)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
        return self
