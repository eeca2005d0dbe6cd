"""Validation of option-chain rows and whole datasets (DESIGN §3.4).

Every row ends up either good or quarantined with exactly one reason, the first that applies in
the order of ``REASONS``. The checks and why each is defined the way it is:

- ``non_finite``: NaN or infinity in strike, bid, ask or underlying_price (the required numbers).
- ``invalid_value``: right not 'C'/'P' or style not 'A'/'E'.
- ``negative_price``: bid, ask or last below zero, or strike / underlying_price not positive.
  A zero bid is allowed (far out-of-the-money options often have none).
- ``crossed_quote``: bid > ask.
- ``expired``: expiration before quote_date (expiring on the quote date is fine).
- ``non_trading_day``: quote_date is not an XNYS session; vendors publish copies of the previous
  snapshot on holidays (the SPX 2019 sample has 2019-05-27 and 2019-07-04).
- ``duplicate_key``: a second row for (underlying, quote_date, root, expiration, right, strike);
  the first in input order is kept.
- ``off_grid_strike``: a strike not on the listing grid of its trading class that day; see
  ``_strike_grid_mask`` for the (deliberately conservative) definition.
- ``stale_underlying``: the day's underlying_price equals the previous quote day's exactly while
  the spot implied by put-call parity moved by more than ``STALE_SPOT_MOVE`` since the day that
  price was first quoted; all rows of that underlying and day are quarantined, since every
  moneyness and greek computed from them is wrong.
- ``underlying_mismatch``: with daily bars given, underlying_price outside the day's [low, high]
  (close where those are missing) widened by ``BAR_TOLERANCE``; all rows of that day.
- ``vertical_arbitrage`` / ``butterfly_arbitrage`` / ``calendar_arbitrage``: the row is a leg
  of a vertical spread (any two strikes), an adjacent-strike butterfly, or (American options
  only) a same-strike calendar that trades for a riskless profit at bid/ask (buying at the ask,
  selling at the bid). All legs go, since the data cannot say which quote is wrong.

Static arbitrage at *mid* prices (verticals, butterflies, and calendars in total variance
w = iv^2 T) is counted and reported, not quarantined: real quotes with wide spreads break it by
less than the spread, and such a quote cannot be exploited by a backtest that fills at bid/ask.
European calendars are only counted: a fixed-strike calendar is not an arbitrage for European
options with dividends, and the implied volatilities at bid and ask are not known here.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from tqdm import tqdm

from backtest.calendar import session_bounds, trading_days
from backtest.errors import UserError
from backtest.schema import CHAIN_SCHEMA, QUARANTINE_SCHEMA, conform
from backtest.store import (
    CHAIN_DICTIONARY_COLUMNS,
    CHAIN_STATISTICS_COLUMNS,
    DATASET_JSON,
    Dataset,
    StoreError,
    chain_order,
    date_days,
    date_to_days,
    letter_codes,
    days_to_date,
    packed_order,
    sort_chains,
)
from backtest.validate_nb import (
    calendar_scan,
    first_row_reasons,
    otm_total_variances,
    parity_spots,
    quote_ticks,
    repeated_keys,
    strike_grid,
    strike_scan,
    tradable_calendars,
)

REASONS: tuple[str, ...] = (
    "non_finite",
    "invalid_value",
    "negative_price",
    "crossed_quote",
    "expired",
    "non_trading_day",
    "duplicate_key",
    "off_grid_strike",
    "stale_underlying",
    "underlying_mismatch",
    "vertical_arbitrage",
    "butterfly_arbitrage",
    "calendar_arbitrage",
)

REASON_DESCRIPTIONS: dict[str, str] = {
    "non_finite": "NaN or infinity in strike, bid, ask or underlying_price",
    "invalid_value": "right not C/P or style not A/E",
    "negative_price": "bid, ask or last < 0, or strike / underlying_price <= 0",
    "crossed_quote": "bid > ask",
    "expired": "expiration before quote_date",
    "non_trading_day": "quote_date is not an exchange (XNYS) trading day",
    "duplicate_key": "repeats (underlying, quote_date, root, expiration, right, strike); first kept",
    "off_grid_strike": "strike off its trading class's strike grid that day",
    "stale_underlying": "underlying_price unchanged from the previous quote day while the chain moved",
    "underlying_mismatch": "underlying_price outside the day's bar range",
    "vertical_arbitrage": "leg of a vertical spread that is a riskless profit at bid/ask",
    "butterfly_arbitrage": "leg of a butterfly that is a riskless profit at bid/ask",
    "calendar_arbitrage": "American option bid above the ask of a later expiration at the same strike",
}

MID_CHECKS: tuple[str, ...] = ("vertical", "butterfly", "calendar")

# A stale price is only called stale when the chain shows the market moved by more than this
# (parity spots are good to about a basis point; an index closing unchanged to the cent happens).
STALE_SPOT_MOVE = 0.002
# Option snapshots (15:45, 16:15) and the 16:00 bar differ in time: allow this much outside the bar.
BAR_TOLERANCE = 0.01
# Slack added to the quote tick in mid-price checks: above float noise (and all of the slack
# for quotes that are on no tick grid, such as unrounded synthetic ones).
MID_TOLERANCE = 1e-6
# Quote ticks recognised (SPX $0.05/$0.10, equities $0.01 and $0.05): a mid-price violation
# must exceed one tick, the most that rounding bid and ask to the tick can produce.
_TICKS = (0.10, 0.05, 0.01, 0.005)
_TICK_SHARE = 0.99
# Tick rules change at $3 (SPX: $0.05 below, $0.10 above; penny pilot: $0.01 below, $0.05 above).
_TICK_BAND_EDGE = 3.0
# Vendor IVs carry about 4 decimals; total variances closer than this (relative) are not compared.
CALENDAR_REL_TOLERANCE = 1e-3
# IVs outside this range are vendor placeholders (deep ITM IVs of 36.0 in the SPX sample).
MAX_PLAUSIBLE_IV = 5.0
# validate_dataset checks partition files in batches of about this many rows (about 0.5 GB).
BATCH_ROWS = 1_000_000

# Candidate strike increments in thousandths of a dollar, largest first (see _strike_grid_mask).
_STRIKE_STEPS_MILLI = np.array(
    [100_000, 50_000, 25_000, 10_000, 5_000, 2_500, 1_000, 500, 250, 100, 50, 10, 5, 1], dtype=np.int64
)
_MIN_GRID_STRIKES = 20
_GRID_OUTLIER_SHARE = 0.01


@dataclass(frozen=True)
class DayPrice:
    """An underlying's last quote day, its underlying price, and the put-call-parity spot of the
    day that price was first quoted: what the stale check of the next day compares to."""

    quote_date: dt.date
    underlying_price: float
    parity_spot: float


@dataclass(frozen=True)
class StaticArbitrage:
    """Static-arbitrage flags per input row (input order). ``mid[check]``: the row is in a
    violation at mid prices (vertical, butterfly, calendar); ``tradable[check]``: in one that
    trades at bid/ask (vertical, butterfly, calendar of American options). ``checked`` marks the
    rows that took part (rows passing the row checks, with ask > 0)."""

    checked: np.ndarray
    mid: dict[str, np.ndarray]
    tradable: dict[str, np.ndarray]

    @property
    def mid_any(self) -> np.ndarray:
        return np.logical_or.reduce([self.mid[c] for c in MID_CHECKS])

    def counts(self) -> dict[str, int]:
        out = {"rows_checked": int(self.checked.sum())}
        out.update({f"mid_{c}": int(m.sum()) for c, m in self.mid.items()})
        out["mid_any"] = int(self.mid_any.sum())
        out.update({f"tradable_{c}": int(m.sum()) for c, m in self.tradable.items()})
        return out


@dataclass(frozen=True)
class RowValidation:
    """The outcome of ``validate_rows``: good rows (CHAIN_SCHEMA, input order or store order),
    quarantined rows (QUARANTINE_SCHEMA, input order, with reason and source), counts per reason
    (every reason, zeros included), counts of rows in static-arbitrage violations at mid prices
    (reported only), each underlying's last good quote day (pass it as ``previous_days`` to the
    next call) and which input rows are good (``good_mask``, input order)."""

    good: pa.Table
    quarantined: pa.Table
    counts: dict[str, int]
    mid_violations: dict[str, int] = field(default_factory=dict)
    last_days: dict[str, DayPrice] = field(default_factory=dict)
    good_mask: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return self.good.num_rows + self.quarantined.num_rows


# --------------------------------------------------------------------------- preparation


@dataclass(frozen=True)
class _Rows:
    """Input rows as numpy columns, in the sort order (underlying, quote_date, root, expiration,
    right, strike, input position); ``order[i]`` is the input position of sorted row i."""

    order: np.ndarray
    underlying: np.ndarray
    underlyings: tuple[str, ...]
    quote_date: np.ndarray
    root: np.ndarray
    right: np.ndarray  # 1 call, 0 put, -1 invalid
    style_ok: np.ndarray
    american: np.ndarray
    expiration: np.ndarray
    strike: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    last: np.ndarray
    iv: np.ndarray
    underlying_price: np.ndarray

    def starts(self, *keys: str) -> np.ndarray:
        """Offsets of the blocks of equal ``keys`` (a prefix of the sort order), with the end."""
        if keys != _BLOCK_KEYS[:len(keys)]:
            raise ValueError(f"{keys} is not a prefix of {_BLOCK_KEYS}")
        n = len(self.order)
        if not n:
            return np.zeros(1, np.int64)
        return np.concatenate(([0], np.flatnonzero(self._first_change < len(keys)) + 1, [n]))

    @cached_property
    def _first_change(self) -> np.ndarray:
        """For each row after the first, the index in _BLOCK_KEYS of the first key on which it
        differs from the row before (len(_BLOCK_KEYS) when none): every ``starts`` from one pass."""
        n = len(self.order)
        first = np.full(max(n - 1, 0), len(_BLOCK_KEYS), np.int8)
        for level in range(len(_BLOCK_KEYS) - 1, -1, -1):
            col = getattr(self, _BLOCK_KEYS[level])
            first[col[1:] != col[:-1]] = level
        return first


_BLOCK_KEYS = ("underlying", "quote_date", "root", "expiration", "right")


def _codes(col: pa.ChunkedArray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Integer codes of a string column and the values they stand for (one code per value)."""
    if pa.types.is_dictionary(col.type):
        enc = col.chunk(0) if col.num_chunks == 1 else col.unify_dictionaries().combine_chunks()  # one: no copy
        values = tuple(enc.dictionary.to_pylist())
        if len(set(values)) == len(values):
            return enc.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False), values
    enc = pc.dictionary_encode(col.cast(pa.string()).combine_chunks())
    return enc.indices.to_numpy(zero_copy_only=False).astype(np.int32), tuple(enc.dictionary.to_pylist())


def _floats(col: pa.ChunkedArray) -> np.ndarray:
    # nulls come out as NaN (to_numpy gives numeric columns with nulls as floats): no fill_null copy
    return col.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _prepare(table: pa.Table) -> _Rows:
    underlying, underlyings = _codes(table["underlying"])
    root, _ = _codes(table["root"])
    right = letter_codes(table["right"], "PC")  # 1 call, 0 put, -1 invalid
    style = letter_codes(table["style"], "AE")
    style_ok, american = style >= 0, style == 0
    quote_date, expiration = date_days(table["quote_date"]), date_days(table["expiration"])
    strike = _floats(table["strike"])
    order = _sort_order(underlying, quote_date, root, expiration, right, strike)
    return _Rows(
        order=order,
        underlying=underlying[order],
        underlyings=underlyings,
        quote_date=quote_date[order],
        root=root[order],
        right=right[order],
        style_ok=style_ok[order],
        american=american[order],
        expiration=expiration[order],
        strike=strike[order],
        bid=_floats(table["bid"])[order],
        ask=_floats(table["ask"])[order],
        last=_floats(table["last"])[order],
        iv=_floats(table["iv"])[order],
        underlying_price=_floats(table["underlying_price"])[order],
    )


def _sort_order(underlying, quote_date, root, expiration, right, strike) -> np.ndarray:
    """Stable sort by (underlying, quote_date, root, expiration, right, strike): ties keep their
    input order, which "keep the first duplicate" relies on. When the fields fit, they are packed
    into one int64 key (strikes in thousandths), which sorts store-ordered input (already in
    runs) almost for free; otherwise Arrow sorts the fields."""
    n = len(strike)
    with np.errstate(invalid="ignore"):
        milli = np.rint(strike * 1000.0)
        packable = bool(n) and np.isfinite(strike).all() and (np.abs(strike * 1000.0 - milli) <= 1e-4).all()
    if packable:
        order = packed_order([underlying, quote_date, root, expiration, right, milli.astype(np.int64)])
        if order is not None:
            return order
    keys = pa.table({
        "underlying": underlying, "quote_date": quote_date, "root": root, "expiration": expiration,
        "right": right, "strike": strike,
    })
    return pc.sort_indices(keys, sort_keys=[(k, "ascending") for k in keys.column_names]).to_numpy()


# --------------------------------------------------------------------------- row checks


def _reason_code(name: str) -> int:
    return REASONS.index(name) + 1


def _assign(reasons: np.ndarray, condition: np.ndarray, name: str) -> None:
    """Give ``name`` to rows that meet ``condition`` and have no earlier reason."""
    reasons[(reasons == 0) & condition] = _reason_code(name)


@lru_cache(maxsize=256)
def _sessions(first: int, last: int) -> np.ndarray:
    """Whether each day from day number `first` to `last` is an XNYS session."""
    days = [date_to_days(d) for d in trading_days(days_to_date(first), days_to_date(last))]
    is_session = np.zeros(last - first + 1, bool)
    is_session[np.array(days, np.int64) - first] = True
    is_session.setflags(write=False)  # cached: shared by every caller
    return is_session


def _non_trading_days(quote_date: np.ndarray) -> np.ndarray:
    if not len(quote_date):
        return np.zeros(0, bool)
    first, last = days_to_date(int(quote_date.min())), days_to_date(int(quote_date.max()))
    known_first, known_last = session_bounds()
    if known_first <= first and last <= known_last:  # whole years: one calendar query a year, not ~0.5 ms a file
        first, last = max(dt.date(first.year, 1, 1), known_first), min(dt.date(last.year, 12, 31), known_last)
    first_day = date_to_days(first)
    return ~_sessions(first_day, date_to_days(last))[quote_date - first_day]


def _duplicates(rows: _Rows, ok: np.ndarray) -> np.ndarray:
    """Rows (among ``ok`` ones) repeating the key of an earlier ok row; sorted order puts equal
    keys next to each other in input order, so the first of a run is kept."""
    return repeated_keys(ok, rows.underlying, rows.quote_date, rows.root, rows.expiration, rows.right, rows.strike)


def _strike_grid_mask(rows: _Rows, ok: np.ndarray) -> np.ndarray:
    """Rows whose strike is off the grid of its (underlying, quote_date, root).

    Definition (conservative on purpose):
    1. a strike must be a whole number of thousandths of a dollar (catches unit and parse errors);
    2. per trading class and day (all expirations together, since a class lists one grid family:
       SPX 5/25/100-point, SPY $0.5/$1), take the distinct strikes; the grid step is the largest
       standard increment (from $100 down to $0.001) on which all but at most
       max(1, 1%) of them fall at a common offset (offset, so that grids like 22.5, 27.5, ...
       and the odd strikes of adjusted classes count as regular); strikes off that lattice are
       off the grid. Classes with fewer than 20 distinct strikes that day get only check 1.
    Irregular real grids (5-point near the money, 25 or 100 further out; $0.5 only near the money)
    are all multiples of the finer step, so they are never flagged.
    """
    with np.errstate(invalid="ignore"):
        scaled = rows.strike * 1000.0
        milli = np.rint(scaled)
        # float noise in strike * 1000 stays far below 1e-4 for any listed strike
        off_lattice = ok & (np.abs(scaled - milli) > 1e-4)
    on_lattice = ok & ~off_lattice
    off_grid = strike_grid(
        rows.starts("underlying", "quote_date", "root"), np.where(on_lattice, milli, 0).astype(np.int64),
        on_lattice, _STRIKE_STEPS_MILLI, _MIN_GRID_STRIKES, _GRID_OUTLIER_SHARE,
    )
    return off_lattice | off_grid


_FIRST_ROW_REASONS = np.array([_reason_code(r) for r in (
    "non_finite", "invalid_value", "negative_price", "crossed_quote", "expired")], np.int8)  # first_row_reasons' order


def _row_checks(rows: _Rows) -> np.ndarray:
    """Reason codes (0 = good) of the checks that need no other day: everything up to
    ``off_grid_strike``."""
    reasons = first_row_reasons(rows.strike, rows.bid, rows.ask, rows.last, rows.underlying_price, rows.right,
                                rows.style_ok, rows.expiration, rows.quote_date, _FIRST_ROW_REASONS)
    _assign(reasons, _non_trading_days(rows.quote_date), "non_trading_day")
    _assign(reasons, _duplicates(rows, reasons == 0), "duplicate_key")
    _assign(reasons, _strike_grid_mask(rows, reasons == 0), "off_grid_strike")
    return reasons


# --------------------------------------------------------------------------- day checks


def _day_checks(
    rows: _Rows,
    reasons: np.ndarray,
    previous_days: Mapping[str, DayPrice],
    bars: Mapping[str, pa.Table],
) -> dict[str, DayPrice]:
    """Stale-underlying and bar checks per (underlying, quote_date); updates ``reasons`` in place
    and returns each underlying's last good day."""
    ok = reasons == 0
    day_starts = rows.starts("underlying", "quote_date")
    first = day_starts[:-1]
    n_days = len(first)
    # the day's price: the first good row's (rows of a day share it in every known format)
    ok_idx = np.flatnonzero(ok)
    pos = np.searchsorted(ok_idx, first)
    has_good = pos < len(ok_idx)
    has_good[has_good] = ok_idx[pos[has_good]] < day_starts[1:][has_good]
    price = np.full(n_days, np.nan)
    price[has_good] = rows.underlying_price[ok_idx[pos[has_good]]]
    spot = parity_spots(day_starts, rows.root, rows.expiration, rows.right == 1, rows.strike,
                        0.5 * (rows.bid + rows.ask), ok & (rows.ask > 0))
    underlying = rows.underlying[first]
    date = rows.quote_date[first]

    stale = np.zeros(n_days, bool)
    mismatch = np.zeros(n_days, bool)
    last_days = dict(previous_days)
    for u_code, name in enumerate(rows.underlyings):
        days = np.flatnonzero((underlying == u_code) & has_good)
        if not len(days):
            continue
        stale[days], last_days[name] = _stale_run(days, date, price, spot, last_days.get(name))
        if name in bars and bars[name].num_rows:
            mismatch[days] = _outside_bars(date[days], price[days], bars[name])
    day_of_row = np.repeat(np.arange(n_days), np.diff(day_starts))
    _assign(reasons, stale[day_of_row], "stale_underlying")
    _assign(reasons, mismatch[day_of_row], "underlying_mismatch")
    return last_days


def _stale_run(days, date, price, spot, previous: DayPrice | None) -> tuple[np.ndarray, DayPrice]:
    """Stale flags of one underlying's ``days`` (in date order) and the state for the next call.

    A price is compared with the parity spot of the day it was first quoted, so a price stuck
    for several days is caught once the market has moved far enough in total, however slowly."""
    anchor = previous
    stale = np.zeros(len(days), bool)
    for i, d in enumerate(days):
        if anchor is not None and price[d] == anchor.underlying_price:
            stale[i] = abs(spot[d] / anchor.parity_spot - 1.0) > STALE_SPOT_MOVE
            anchor = DayPrice(days_to_date(date[d]), anchor.underlying_price, anchor.parity_spot)
        else:
            anchor = DayPrice(days_to_date(date[d]), float(price[d]), float(spot[d]))
    return stale, anchor


def _outside_bars(dates: np.ndarray, price: np.ndarray, bars: pa.Table) -> np.ndarray:
    bars = bars.sort_by("date")
    bar_dates = bars["date"].cast(pa.int32()).to_numpy(zero_copy_only=False)
    close = _floats(bars["close"])
    low = np.fmin(_floats(bars["low"]), close)
    high = np.fmax(_floats(bars["high"]), close)
    pos = np.searchsorted(bar_dates, dates)
    pos_c = np.minimum(pos, len(bar_dates) - 1)
    has_bar = bar_dates[pos_c] == dates
    lo = low[pos_c] * (1 - BAR_TOLERANCE)
    hi = high[pos_c] * (1 + BAR_TOLERANCE)
    return has_bar & ((price < lo) | (price > hi))


# --------------------------------------------------------------------------- static arbitrage


def _quote_ticks(rows: _Rows, eligible: np.ndarray) -> np.ndarray:
    """Per row, the quote tick of its (underlying, quote_date) and price band: the largest of
    ``_TICKS`` that at least 99% of the band's positive bids and asks are multiples of (0 when
    none is); a row whose bid and ask lie in different bands takes the larger tick."""
    return quote_ticks(rows.starts("underlying", "quote_date"), rows.bid, rows.ask, eligible, np.array(_TICKS),
                       _TICK_SHARE, _TICK_BAND_EDGE)


def _arbitrage_sorted(rows: _Rows, eligible: np.ndarray) -> StaticArbitrage:
    """Static-arbitrage masks in sorted order over ``eligible`` rows."""
    eligible = eligible & (rows.ask > 0)
    mid_tol = _quote_ticks(rows, eligible) + MID_TOLERANCE
    is_call = rows.right == 1
    mid_v, mid_b, trade_v, trade_b = strike_scan(
        rows.starts("underlying", "quote_date", "root", "expiration", "right"),
        is_call, rows.strike, rows.bid, rows.ask, eligible, mid_tol,
    )
    # two-sided quotes only: a zero-bid option's IV is mostly the rounding of its ask
    total_variance = otm_total_variances(is_call, rows.strike, rows.underlying_price, rows.bid, rows.iv,
                                         rows.expiration, rows.quote_date, eligible, MAX_PLAUSIBLE_IV)
    class_starts = rows.starts("underlying", "quote_date", "root")
    mid_c = calendar_scan(class_starts, rows.expiration, rows.right, rows.strike, total_variance,
                          CALENDAR_REL_TOLERANCE)
    # American calendars: the rows of one strike and right of one class-day side by side, by expiration
    american = np.flatnonzero(eligible & rows.american)
    series = (np.searchsorted(class_starts, american, side="right") - 1) * 2 + rows.right[american]
    perm = np.lexsort((rows.expiration[american], rows.strike[american], series))
    by_series, series, strikes = american[perm], series[perm], rows.strike[american][perm]
    same_series = np.zeros(len(by_series), bool)
    same_series[1:] = (series[1:] == series[:-1]) & (strikes[1:] == strikes[:-1])
    trade_c = tradable_calendars(by_series, same_series, rows.expiration, rows.bid, rows.ask)
    return StaticArbitrage(
        checked=eligible,
        mid={"vertical": mid_v, "butterfly": mid_b, "calendar": mid_c},
        tradable={"vertical": trade_v, "butterfly": trade_b, "calendar": trade_c},
    )


def _to_input_order(rows: _Rows, sorted_mask: np.ndarray) -> np.ndarray:
    out = np.empty_like(sorted_mask)
    out[rows.order] = sorted_mask
    return out


def _conformed(table: pa.Table, source: str) -> pa.Table:
    try:
        return conform(table, CHAIN_SCHEMA)
    except ValueError as exc:
        raise UserError(f"{source}: {exc}") from None


def static_arbitrage_violations(table: pa.Table) -> StaticArbitrage:
    """Static-arbitrage flags of a chain table, per input row.

    Rows that fail a row check of ``validate_rows`` (bad numbers, crossed, expired, duplicate,
    off-grid) and rows without an ask take no part. For ``osd data stats``: the share of rows
    with a violation at mid is ``r.mid_any.sum() / r.checked.sum()``.
    """
    table = _conformed(table, "static_arbitrage_violations")
    rows = _prepare(table)
    found = _arbitrage_sorted(rows, _row_checks(rows) == 0)
    return StaticArbitrage(
        checked=_to_input_order(rows, found.checked),
        mid={k: _to_input_order(rows, v) for k, v in found.mid.items()},
        tradable={k: _to_input_order(rows, v) for k, v in found.tradable.items()},
    )


# --------------------------------------------------------------------------- rows


def validate_rows(
    table: pa.Table,
    *,
    source: str,
    previous_days: Mapping[str, DayPrice] | None = None,
    bars: Mapping[str, pa.Table] | None = None,
    store_order: bool = False,
) -> RowValidation:
    """Check chain rows; every input row ends up in ``good`` or in ``quarantined`` with a reason.

    ``source`` names where the rows came from (a file) and is stored with quarantined rows.
    ``previous_days`` (from the last call's ``last_days``) lets the stale-underlying check see
    across calls; ``bars`` (underlying -> BAR_SCHEMA table) enables ``underlying_mismatch``.
    Each day's rows must all be in one call (duplicates and spreads are checked within it).
    With ``store_order``, good rows come sorted as chain files store them (``sort_chains``'s
    order: CHAIN_SORT_KEYS, ties in input order) instead of in input order.
    """
    table = _conformed(table, source)
    rows, reasons, found, last_days = _classify(table, previous_days or {}, bars or {})
    # store order from the sort keys in input order, rights ranked calls first as sort_chains
    # ranks 'C' < 'P'; None where the rows are already in it
    order = chain_order(*(_to_input_order(rows, key) for key in (
        rows.quote_date, rows.expiration, 1 - rows.right, rows.strike))) if store_order else None
    if order is not None:
        good = _take(table, order[reasons[order] == 0])
    else:
        good = table if not reasons.any() else _filter(table, reasons == 0)
    quarantined = _quarantine_table(table, reasons, source)
    if good.num_rows + quarantined.num_rows != table.num_rows:
        raise AssertionError(f"{source}: row accounting broken: {good.num_rows} good + "
                             f"{quarantined.num_rows} quarantined != {table.num_rows} rows")
    return RowValidation(
        good=good,
        quarantined=quarantined,
        counts=_reason_counts(reasons),
        mid_violations=_mid_counts(found),
        last_days=last_days,
        good_mask=reasons == 0,
    )


def _classify(
    table: pa.Table, previous_days: Mapping[str, DayPrice], bars: Mapping[str, pa.Table]
) -> tuple[_Rows, np.ndarray, StaticArbitrage, dict[str, DayPrice]]:
    """The rows as sorted for the checks, reason codes per input row (0 = good, else 1 + index
    into REASONS), the static-arbitrage flags (sorted order) and each underlying's last good day."""
    rows = _prepare(table)
    reasons = _row_checks(rows)
    last_days = _day_checks(rows, reasons, previous_days, bars)
    found = _arbitrage_sorted(rows, reasons == 0)
    _assign(reasons, found.tradable["vertical"], "vertical_arbitrage")
    _assign(reasons, found.tradable["butterfly"], "butterfly_arbitrage")
    _assign(reasons, found.tradable["calendar"], "calendar_arbitrage")
    return rows, _to_input_order(rows, reasons), found, last_days


def _filter(table: pa.Table, mask: np.ndarray) -> pa.Table:
    """``table.filter`` column by column: several times faster on a busy machine, where Arrow's
    table-level filter spends its time scheduling threads."""
    keep = pa.array(mask)
    return pa.Table.from_arrays([col.filter(keep) for col in table.columns], schema=table.schema)


def _take(table: pa.Table, indices: np.ndarray) -> pa.Table:
    """``table.take`` column by column (as ``_filter``), without Arrow's bounds check of the
    indices for every column (~15% of the take): they come from a sort of the table's rows."""
    rows = pa.array(indices)
    return pa.Table.from_arrays([pc.take(col, rows, boundscheck=False) for col in table.columns], schema=table.schema)


_NO_QUARANTINE = QUARANTINE_SCHEMA.empty_table()  # shared (tables are immutable): empty_table() takes ~0.4 ms


def _quarantine_table(table: pa.Table, reasons: np.ndarray, source: str) -> pa.Table:
    bad = reasons > 0
    if not bad.any():
        return _NO_QUARANTINE
    out = _filter(table, bad)
    # the text columns decoded from codes by Arrow: no Python string per row
    reason = pa.DictionaryArray.from_arrays(pa.array(reasons[bad].astype(np.int32) - 1), pa.array(REASONS))
    where = pa.DictionaryArray.from_arrays(pa.array(np.zeros(out.num_rows, np.int32)), pa.array([source]))
    out = out.append_column("reason", reason.cast(pa.string())).append_column("source", where.cast(pa.string()))
    return conform(out, QUARANTINE_SCHEMA)


def _reason_counts(reasons: np.ndarray) -> dict[str, int]:
    return _reason_counts_from_totals(np.bincount(reasons, minlength=len(REASONS) + 1))


def _mid_counts(found: StaticArbitrage) -> dict[str, int]:
    return {c: int(found.mid[c].sum()) for c in MID_CHECKS} | {"any": int(found.mid_any.sum())}


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class ValidationReport:
    """The outcome of ``validate_dataset``. ``usable`` is False when the engine cannot run on the
    dataset (no dataset.json, no chain rows, a file that does not match the schema, no good row
    left); ``messages`` then say which file, which rows and why. ``counts`` are quarantined rows
    per reason; ``mid_violations`` rows in static-arbitrage violations at mid (reported only)."""

    path: str
    usable: bool
    messages: tuple[str, ...] = ()
    files: int = 0
    rows: int = 0
    good_rows: int = 0
    quarantined_rows: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    by_underlying: dict[str, dict[str, int]] = field(default_factory=dict)
    mid_violations: dict[str, int] = field(default_factory=dict)
    quarantine_applied: bool = False
    rewritten_files: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["messages"] = list(self.messages)
        out["rewritten_files"] = list(self.rewritten_files)
        return out


class _Staging:
    """New versions of files, written under temporary names first and swapped in together by
    ``commit``; if a swap fails, the swaps done so far are undone, so the dataset is either the
    old one or the new one. ``discard`` removes whatever was staged."""

    def __init__(self) -> None:
        self._replacements: list[tuple[Path, Path | None]] = []

    def stage_table(self, target: Path, table: pa.Table | None, **write_options: Any) -> None:
        """Replace ``target`` with ``table`` (None: remove it); options go to pq.write_table."""
        staged = None
        if table is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            staged = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            self._replacements.append((target, staged))
            pq.write_table(table, staged, **({"compression": "zstd"} | write_options))
        else:
            self._replacements.append((target, None))

    def stage_json(self, target: Path, obj: Any) -> None:
        staged = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        self._replacements.append((target, staged))
        staged.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")

    def commit(self) -> None:
        done: list[tuple[Path, Path | None]] = []
        # new files (quarantine parts) first, so that even a crash half-way loses no row
        ordered = sorted(self._replacements, key=lambda item: item[0].exists())
        try:
            for target, staged in ordered:
                backup = None
                if target.exists():
                    backup = target.with_name(f".{target.name}.{uuid.uuid4().hex}.bak")
                    os.replace(target, backup)
                done.append((target, backup))
                if staged is not None:
                    os.replace(staged, target)
        except BaseException:
            for target, backup in reversed(done):
                if backup is not None:
                    os.replace(backup, target)
                else:
                    target.unlink(missing_ok=True)
            raise
        finally:
            self.discard()
        for _, backup in done:
            if backup is not None:
                backup.unlink()

    def discard(self) -> None:
        for _, staged in self._replacements:
            if staged is not None:
                staged.unlink(missing_ok=True)
        self._replacements = []


class _Unusable(Exception):
    """Stops a validation whose dataset cannot be used; the message names file, rows and why."""


def _read_chain_file(ds: Dataset, path: str) -> pa.Table:
    try:
        table = pq.read_table(path, filesystem=ds.fs)
    except (OSError, pa.ArrowException) as exc:
        raise _Unusable(f"{path}: cannot read as Parquet: {exc}") from None
    try:
        return conform(table, CHAIN_SCHEMA)
    except ValueError as exc:
        raise _Unusable(f"{path}: all {table.num_rows} rows: schema mismatch: {exc}") from None


def _file_batches(ds: Dataset, files: list[str]) -> list[list[int]]:
    """Batches of file indices, in date order, each read and checked at once. Files that share a
    quote date are always in one batch (a day's rows must be validated together); consecutive
    groups are merged up to ``BATCH_ROWS`` rows so that per-call overheads stay small. Memory is
    bounded by max(BATCH_ROWS, the largest group of files sharing dates)."""
    parent = list(range(len(files)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[int, int] = {}
    first_day: dict[int, int] = {}
    rows: dict[int, int] = {}
    for i, path in enumerate(files):
        try:
            days = pq.read_table(path, columns=["quote_date"], filesystem=ds.fs)["quote_date"]
        except (OSError, pa.ArrowException, KeyError) as exc:
            raise _Unusable(f"{path}: cannot read column quote_date: {exc}") from None
        unique = np.unique(days.cast(pa.int32()).to_numpy(zero_copy_only=False))
        first_day[i] = int(unique[0]) if len(unique) else 0
        rows[i] = len(days)
        for d in unique.tolist():
            if d in owner:
                parent[find(i)] = find(owner[d])
            else:
                owner[d] = i
    units: dict[int, list[int]] = {}
    for i in range(len(files)):
        units.setdefault(find(i), []).append(i)
    batches: list[list[int]] = []
    batch_rows = 0
    for unit in sorted(units.values(), key=lambda unit: min(first_day[i] for i in unit)):
        unit_rows = sum(rows[i] for i in unit)
        if batches and batch_rows + unit_rows <= BATCH_ROWS:
            batches[-1] += unit
            batch_rows += unit_rows
        else:
            batches.append(list(unit))
            batch_rows = unit_rows
    return batches


def _read_bars(ds: Dataset, underlying: str) -> dict[str, pa.Table]:
    try:
        return {underlying: ds.read_underlying(underlying)}
    except StoreError:
        return {}


def validate_dataset(path: str | os.PathLike, *, quarantine: bool = True, progress: bool = False) -> ValidationReport:
    """Run every check over the dataset at ``path``, one group of partition files at a time.

    With ``quarantine``, bad rows move to ``quarantine/`` with their reasons, the affected chain
    files are rewritten without them and dataset.json's counts are updated, all staged under
    temporary names and swapped in only after every file validated (a failure leaves the dataset
    as it was). An unusable dataset is reported (``usable`` False) and never modified.
    """
    path = str(path)
    try:
        ds = Dataset(path)
    except StoreError as exc:
        return ValidationReport(path=path, usable=False, messages=(str(exc),))
    local = isinstance(ds.fs, pafs.LocalFileSystem)
    if quarantine and not local:
        raise UserError(f"{path}: quarantining rewrites files and needs a local dataset; use --no-quarantine")
    files = {u: ds.chain_files(u) for u in ds.underlyings}
    n_files = sum(len(f) for f in files.values())
    if not n_files:
        return ValidationReport(path=path, usable=False, messages=(f"{path}: no chain files under chains/",))

    staging = _Staging()
    totals = np.zeros(len(REASONS) + 1, np.int64)
    mid = dict.fromkeys(MID_CHECKS + ("any",), 0)
    by_underlying: dict[str, dict[str, int]] = {}
    meta_underlyings: dict[str, dict[str, Any]] = {}
    rewritten: list[str] = []
    messages: list[str] = []
    with tqdm(total=n_files, unit="file", desc="validate", disable=not progress) as progress_bar:
        try:
            for underlying, paths in files.items():
                bars = _read_bars(ds, underlying)
                previous: dict[str, DayPrice] = {}
                u_counts = np.zeros(len(REASONS) + 1, np.int64)
                good_dates: list[np.ndarray] = []
                for batch in _file_batches(ds, paths):
                    tables = [_read_chain_file(ds, paths[i]) for i in batch]
                    combined = pa.concat_tables(tables)
                    _, reasons, found, previous = _classify(combined, previous, bars)
                    u_counts += np.bincount(reasons, minlength=len(REASONS) + 1)
                    for check, n in _mid_counts(found).items():
                        mid[check] += n
                    good_dates.append(
                        combined["quote_date"].cast(pa.int32()).to_numpy(zero_copy_only=False)[reasons == 0]
                    )
                    offsets = np.cumsum([0] + [t.num_rows for t in tables])
                    for k, i in enumerate(batch):
                        file_reasons = reasons[offsets[k]:offsets[k + 1]]
                        if quarantine and (file_reasons > 0).any():
                            _stage_file(staging, ds, paths[i], tables[k], file_reasons)
                            rewritten.append(paths[i])
                        progress_bar.update(1)
                rows = int(u_counts.sum())
                by_underlying[underlying] = {"rows": rows, "good_rows": int(u_counts[0])} | {
                    name: n for name, n in _reason_counts_from_totals(u_counts).items() if n
                }
                meta_underlyings[underlying] = _span(np.concatenate(good_dates or [np.zeros(0, np.int32)]))
                if rows and not u_counts[0]:
                    messages.append(f"{underlying}: all {rows:,} chain rows fail validation")
                totals += u_counts
            good = int(totals[0])
            if not good:
                reason_text = ", ".join(f"{n:,} {REASONS[j]}" for j, n in enumerate(totals[1:]) if n)
                raise _Unusable(f"{path}: no usable chain rows ({int(totals.sum()):,} rows: {reason_text or 'none'})")
            if quarantine and rewritten:
                staging.stage_json(Path(ds.root) / DATASET_JSON, _updated_meta(ds.meta, meta_underlyings, totals, mid))
                staging.commit()
        except _Unusable as exc:
            staging.discard()
            messages.append(str(exc))
            return _dataset_report(path, False, messages, n_files, totals, by_underlying, mid)
        except BaseException:
            staging.discard()
            raise
    return _dataset_report(path, True, messages, n_files, totals, by_underlying, mid, rewritten)


def _dataset_report(path: str, usable: bool, messages: list[str], files: int, totals: np.ndarray,
                    by_underlying: dict[str, dict[str, int]], mid: dict[str, int],
                    rewritten: list[str] | None = None) -> ValidationReport:
    return ValidationReport(
        path=path, usable=usable, messages=tuple(messages), files=files, rows=int(totals.sum()),
        good_rows=int(totals[0]), quarantined_rows=int(totals[1:].sum()),
        counts=_reason_counts_from_totals(totals), by_underlying=by_underlying, mid_violations=mid,
        quarantine_applied=bool(rewritten), rewritten_files=tuple(rewritten or ()),
    )


def _reason_counts_from_totals(totals: np.ndarray) -> dict[str, int]:
    """Per reason, from counts indexed by reason code (index 0: good rows)."""
    return {name: int(totals[j + 1]) for j, name in enumerate(REASONS)}


def _stage_file(staging: _Staging, ds: Dataset, path: str, table: pa.Table, reasons: np.ndarray) -> None:
    """Stage the file without its bad rows (removed when none is left) and its quarantine part."""
    rel = os.path.relpath(path, ds.root)
    good = _filter(table, reasons == 0)
    # written like DatasetWriter writes chain files, so readers' filters keep their statistics
    staging.stage_table(Path(path), sort_chains(good) if good.num_rows else None,
                        use_dictionary=CHAIN_DICTIONARY_COLUMNS, write_statistics=CHAIN_STATISTICS_COLUMNS)
    name = "validate-" + rel.replace(os.sep, "-").removesuffix(".parquet") + f"-{uuid.uuid4().hex[:8]}.parquet"
    staging.stage_table(Path(ds.root) / "quarantine" / name, _quarantine_table(table, reasons, rel))


def _span(dates: np.ndarray) -> dict[str, Any]:
    if not len(dates):
        return {"rows": 0, "start": None, "end": None}
    return {"rows": len(dates), "start": days_to_date(dates.min()).isoformat(),
            "end": days_to_date(dates.max()).isoformat()}


def _updated_meta(meta: dict[str, Any], underlyings: dict[str, dict[str, Any]], totals: np.ndarray,
                  mid: dict[str, int]) -> dict[str, Any]:
    meta = json.loads(json.dumps(meta))
    meta.setdefault("underlyings", {}).update(underlyings)
    q = meta.setdefault("quarantine", {"rows": 0, "reasons": {}})
    q["rows"] = q.get("rows", 0) + int(totals[1:].sum())
    reasons = q.setdefault("reasons", {})
    for name, n in _reason_counts_from_totals(totals).items():
        if n:
            reasons[name] = reasons.get(name, 0) + n
    meta["validation"] = {
        "validated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "rows": int(totals.sum()),
        "quarantined": _reason_counts_from_totals(totals),
        "mid_violations": mid,
    }
    return meta
