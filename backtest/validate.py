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
  ``strike_grid_mask`` for the (deliberately conservative) definition.
- ``stale_underlying``: the day's underlying_price equals the previous quote day's exactly while
  the spot implied by put-call parity moved by more than ``STALE_SPOT_MOVE``; all rows of that
  underlying and day are quarantined, since every moneyness and greek computed from them is wrong.
- ``underlying_mismatch``: with daily bars given, underlying_price outside the day's [low, high]
  (close where those are missing) widened by ``BAR_TOLERANCE``; all rows of that day.
- ``vertical_arbitrage`` / ``butterfly_arbitrage``: the row is a leg of a vertical spread or an
  adjacent-strike butterfly that trades for a riskless profit at bid/ask (buying at the ask,
  selling at the bid). All legs go, since the data cannot say which quote is wrong.

Static arbitrage at *mid* prices (verticals, butterflies, and calendars in total variance
w = iv^2 T) is counted and reported, not quarantined: real quotes with wide spreads break it by
less than the spread, and such a quote cannot be exploited by a backtest that fills at bid/ask.
A calendar violation is not quarantined either: a fixed-strike calendar is not an arbitrage for
European options with dividends, and the implied volatilities at bid and ask are not known here.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from backtest.calendar import is_trading_day
from backtest.errors import UserError
from backtest.schema import CHAIN_SCHEMA, QUARANTINE_SCHEMA, conform
from backtest.validate_nb import calendar_scan, strike_scan

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
}

MID_CHECKS: tuple[str, ...] = ("vertical", "butterfly", "calendar")

# A stale price is only called stale when the chain shows the market moved by more than this
# (parity spots are good to about a basis point; an index closing unchanged to the cent happens).
STALE_SPOT_MOVE = 0.002
# Option snapshots (15:45, 16:15) and the 16:00 bar differ in time: allow this much outside the bar.
BAR_TOLERANCE = 0.01
# Slack for mid-price checks on quotes that are not on a tick grid: above float noise only.
MID_TOLERANCE = 1e-6
# Quote ticks recognised (SPX $0.05/$0.10, equities $0.01 and $0.05): a mid-price violation
# must exceed one tick, the most that rounding bid and ask to the tick can produce.
_TICKS = (0.10, 0.05, 0.01, 0.005)
_TICK_SHARE = 0.99
# Vendor IVs carry about 4 decimals; total variances closer than this (relative) are not compared.
CALENDAR_REL_TOLERANCE = 1e-3
# IVs outside this range are vendor placeholders (deep ITM IVs of 36.0 in the SPX sample).
MAX_PLAUSIBLE_IV = 5.0

# Candidate strike increments in thousandths of a dollar, largest first (see strike_grid_mask).
_STRIKE_STEPS_MILLI = np.array(
    [100_000, 50_000, 25_000, 10_000, 5_000, 2_500, 1_000, 500, 250, 100, 50, 10, 5, 1], dtype=np.int64
)
_MIN_GRID_STRIKES = 20
_GRID_OUTLIER_SHARE = 0.01


@dataclass(frozen=True)
class DayPrice:
    """An underlying's last validated quote day: what the stale check of the next day compares to."""

    quote_date: dt.date
    underlying_price: float
    parity_spot: float


@dataclass(frozen=True)
class StaticArbitrage:
    """Static-arbitrage flags per input row (input order). ``mid[check]``: the row is in a
    violation at mid prices; ``tradable[check]``: in one that trades at bid/ask (vertical,
    butterfly). ``checked`` marks the rows that took part (valid quotes with ask > 0)."""

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
    """The outcome of ``validate_rows``: good rows (CHAIN_SCHEMA, input order), quarantined rows
    (QUARANTINE_SCHEMA, with reason and source), counts per reason (every reason, zeros
    included), counts of rows in static-arbitrage violations at mid prices (reported only) and
    each underlying's last good quote day (pass it as ``previous_days`` to the next call)."""

    good: pa.Table
    quarantined: pa.Table
    counts: dict[str, int]
    mid_violations: dict[str, int] = field(default_factory=dict)
    last_days: dict[str, DayPrice] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.good.num_rows + self.quarantined.num_rows


# --------------------------------------------------------------------------- preparation


@dataclass(frozen=True)
class _Rows:
    """Input rows as numpy columns, in the sort order (underlying, quote_date, root, right,
    expiration, strike, input position); ``order[i]`` is the input position of sorted row i."""

    order: np.ndarray
    underlying: np.ndarray
    underlyings: tuple[str, ...]
    quote_date: np.ndarray
    root: np.ndarray
    right: np.ndarray  # 1 call, 0 put, -1 invalid
    style_ok: np.ndarray
    expiration: np.ndarray
    strike: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    last: np.ndarray
    iv: np.ndarray
    underlying_price: np.ndarray

    def starts(self, *keys: str) -> np.ndarray:
        """Offsets of the blocks of equal ``keys`` (a prefix of the sort order), with the end."""
        n = len(self.order)
        change = np.zeros(n, bool)
        if n:
            change[0] = True
        for k in keys:
            col = getattr(self, k)
            change[1:] |= col[1:] != col[:-1]
        return np.append(np.flatnonzero(change), n)


def _codes(col: pa.ChunkedArray) -> tuple[np.ndarray, tuple[str, ...]]:
    enc = pc.dictionary_encode(col.cast(pa.string()).combine_chunks())
    return enc.indices.to_numpy(zero_copy_only=False).astype(np.int32), tuple(enc.dictionary.to_pylist())


def _floats(col: pa.ChunkedArray) -> np.ndarray:
    return col.fill_null(np.nan).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _prepare(table: pa.Table) -> _Rows:
    underlying, underlyings = _codes(table["underlying"])
    root, _ = _codes(table["root"])
    right_str = table["right"].cast(pa.string())
    right = np.where(
        pc.equal(right_str, "C").to_numpy(zero_copy_only=False),
        1,
        np.where(pc.equal(right_str, "P").to_numpy(zero_copy_only=False), 0, -1),
    ).astype(np.int8)
    style_ok = pc.is_in(table["style"].cast(pa.string()), pa.array(["A", "E"])).to_numpy(zero_copy_only=False)
    quote_date = table["quote_date"].cast(pa.int32()).to_numpy(zero_copy_only=False)
    expiration = table["expiration"].cast(pa.int32()).to_numpy(zero_copy_only=False)
    strike = _floats(table["strike"])
    position = np.arange(table.num_rows)
    # np.lexsort is stable and sorts by the last key first; position keeps input order in ties
    order = np.lexsort((position, strike, expiration, right, root, quote_date, underlying))
    return _Rows(
        order=order,
        underlying=underlying[order],
        underlyings=underlyings,
        quote_date=quote_date[order],
        root=root[order],
        right=right[order],
        style_ok=style_ok[order],
        expiration=expiration[order],
        strike=strike[order],
        bid=_floats(table["bid"])[order],
        ask=_floats(table["ask"])[order],
        last=_floats(table["last"])[order],
        iv=_floats(table["iv"])[order],
        underlying_price=_floats(table["underlying_price"])[order],
    )


# --------------------------------------------------------------------------- row checks


def _reason_code(name: str) -> int:
    return REASONS.index(name) + 1


def _assign(reasons: np.ndarray, condition: np.ndarray, name: str) -> None:
    """Give ``name`` to rows that meet ``condition`` and have no earlier reason."""
    reasons[(reasons == 0) & condition] = _reason_code(name)


def _non_trading_days(quote_date: np.ndarray) -> np.ndarray:
    days = np.unique(quote_date)
    closed = [d for d in days if not is_trading_day(dt.date(1970, 1, 1) + dt.timedelta(days=int(d)))]
    return np.isin(quote_date, closed)


def _duplicates(rows: _Rows, ok: np.ndarray) -> np.ndarray:
    """Rows (among ``ok`` ones) repeating the key of an earlier ok row; sorted order puts equal
    keys next to each other in input order, so the first of a run is kept."""
    idx = np.flatnonzero(ok)
    same = np.ones(len(idx) - 1 if len(idx) else 0, bool)
    for k in ("underlying", "quote_date", "root", "right", "expiration", "strike"):
        col = getattr(rows, k)[idx]
        same &= col[1:] == col[:-1]
    out = np.zeros(len(ok), bool)
    out[idx[1:][same]] = True
    return out


def strike_grid_mask(rows: _Rows, ok: np.ndarray) -> np.ndarray:
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
    out = np.zeros(len(ok), bool)
    idx = np.flatnonzero(ok)
    if not len(idx):
        return out
    scaled = rows.strike[idx] * 1000.0
    milli = np.rint(scaled).astype(np.int64)
    off_lattice = np.abs(scaled - milli) > 1e-6 * np.maximum(1.0, np.abs(scaled))
    out[idx[off_lattice]] = True

    starts = rows.starts("underlying", "quote_date", "root")
    group = np.searchsorted(starts, idx, side="right") - 1
    keep = ~off_lattice
    pairs = np.unique(np.stack([group[keep], milli[keep]], axis=1), axis=0)
    if not len(pairs):
        return out
    n_groups = len(starts) - 1
    distinct = np.bincount(pairs[:, 0], minlength=n_groups)
    allowed = np.maximum(1, np.floor(_GRID_OUTLIER_SHARE * distinct)).astype(np.int64)
    chosen_step = np.zeros(n_groups, np.int64)
    chosen_offset = np.zeros(n_groups, np.int64)
    for step in _STRIKE_STEPS_MILLI:
        residue = pairs[:, 1] % step
        keys, counts = np.unique(pairs[:, 0] * step + residue, return_counts=True)
        g = keys // step
        # the modal residue per group: sort by (group, count) and take each group's last
        by_count = np.lexsort((counts, g))
        last = np.append(g[by_count][1:] != g[by_count][:-1], True)
        top_group = g[by_count][last]
        top_count = counts[by_count][last]
        fits = (distinct[top_group] - top_count <= allowed[top_group]) & (chosen_step[top_group] == 0)
        chosen_step[top_group[fits]] = step
        chosen_offset[top_group[fits]] = (keys[by_count][last] % step)[fits]
    judged = (distinct[group] >= _MIN_GRID_STRIKES) & keep
    step = np.maximum(chosen_step[group], 1)
    off_grid = judged & (milli % step != chosen_offset[group])
    out[idx[off_grid]] = True
    return out


def _row_checks(rows: _Rows) -> np.ndarray:
    """Reason codes (0 = good) of the checks that need no other day: everything up to
    ``off_grid_strike``."""
    n = len(rows.order)
    reasons = np.zeros(n, np.int8)
    with np.errstate(invalid="ignore"):
        finite = (
            np.isfinite(rows.strike) & np.isfinite(rows.bid) & np.isfinite(rows.ask)
            & np.isfinite(rows.underlying_price)
        )
        _assign(reasons, ~finite, "non_finite")
        _assign(reasons, (rows.right < 0) | ~rows.style_ok, "invalid_value")
        negative = (
            (rows.bid < 0) | (rows.ask < 0) | (rows.last < 0) | (rows.strike <= 0)
            | (rows.underlying_price <= 0)
        )
        _assign(reasons, negative, "negative_price")
        _assign(reasons, rows.bid > rows.ask, "crossed_quote")
    _assign(reasons, rows.expiration < rows.quote_date, "expired")
    _assign(reasons, _non_trading_days(rows.quote_date), "non_trading_day")
    _assign(reasons, _duplicates(rows, reasons == 0), "duplicate_key")
    _assign(reasons, strike_grid_mask(rows, reasons == 0), "off_grid_strike")
    return reasons


# --------------------------------------------------------------------------- day checks


def _parity_spots(rows: _Rows, ok: np.ndarray, day_starts: np.ndarray) -> np.ndarray:
    """Spot implied by put-call parity per (underlying, quote_date) block: in the nearest
    expiration with a call and a put at one strike, the pair with the closest mids gives
    K + C - P. Carry over that short expiry shifts the level by basis points, not the day-to-day
    change this is compared on. NaN where no pair exists."""
    n_days = len(day_starts) - 1
    out = np.full(n_days, np.nan)
    day = np.searchsorted(day_starts, np.arange(len(ok)), side="right") - 1
    mid = 0.5 * (rows.bid + rows.ask)
    quoted = ok & (rows.ask > 0)

    def side(is_call: int) -> pa.Table:
        sel = np.flatnonzero(quoted & (rows.right == is_call))
        return pa.table({"day": day[sel], "root": rows.root[sel], "expiration": rows.expiration[sel],
                         "strike": rows.strike[sel], f"mid{is_call}": mid[sel]})

    pairs = side(1).join(side(0), ["day", "root", "expiration", "strike"], join_type="inner")
    if not pairs.num_rows:
        return out
    d = pairs["day"].to_numpy()
    exp = pairs["expiration"].to_numpy()
    call, put = pairs["mid1"].to_numpy(), pairs["mid0"].to_numpy()
    gap = np.abs(call - put)
    pick = np.lexsort((gap, exp, d))
    first = np.append(True, d[pick][1:] != d[pick][:-1])
    chosen = pick[first]
    out[d[chosen]] = pairs["strike"].to_numpy()[chosen] + call[chosen] - put[chosen]
    return out


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
    spot = _parity_spots(rows, ok, day_starts)
    underlying = rows.underlying[first]
    date = rows.quote_date[first]

    stale = np.zeros(n_days, bool)
    mismatch = np.zeros(n_days, bool)
    last_days = dict(previous_days)
    for u_code, name in enumerate(rows.underlyings):
        days = np.flatnonzero((underlying == u_code) & has_good)
        if not len(days):
            continue
        prev = last_days.get(name)
        prev_price = np.append(prev.underlying_price if prev else np.nan, price[days][:-1])
        prev_spot = np.append(prev.parity_spot if prev else np.nan, spot[days][:-1])
        with np.errstate(invalid="ignore", divide="ignore"):
            moved = np.abs(spot[days] / prev_spot - 1.0) > STALE_SPOT_MOVE
        stale[days] = (price[days] == prev_price) & moved
        if name in bars and bars[name].num_rows:
            mismatch[days] = _outside_bars(date[days], price[days], bars[name])
        last = days[-1]
        last_days[name] = DayPrice(
            dt.date(1970, 1, 1) + dt.timedelta(days=int(date[last])), float(price[last]), float(spot[last])
        )
    day_of_row = np.repeat(np.arange(n_days), np.diff(day_starts))
    _assign(reasons, stale[day_of_row], "stale_underlying")
    _assign(reasons, mismatch[day_of_row], "underlying_mismatch")
    return last_days


def _outside_bars(dates: np.ndarray, price: np.ndarray, bars: pa.Table) -> np.ndarray:
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


def quote_ticks(rows: _Rows, eligible: np.ndarray) -> np.ndarray:
    """Per row, the quote tick of its (underlying, quote_date): the largest of ``_TICKS`` that at
    least 99% of the day's positive bids and asks are multiples of; 0 when none is."""
    starts = rows.starts("underlying", "quote_date")
    tick = np.zeros(len(starts) - 1)
    if len(tick):
        quotes = np.concatenate([rows.bid, rows.ask])
        quoted = np.concatenate([eligible & (rows.bid > 0), eligible & (rows.ask > 0)])
        day = np.concatenate([np.arange(len(rows.bid))] * 2)
        day = np.searchsorted(starts, day, side="right") - 1
        n_quoted = np.bincount(day, weights=quoted, minlength=len(tick))
        for t in sorted(_TICKS):
            with np.errstate(invalid="ignore"):
                on_tick = quoted & (np.abs(quotes / t - np.rint(quotes / t)) < 1e-6)
            share = np.bincount(day, weights=on_tick, minlength=len(tick)) / np.maximum(n_quoted, 1)
            tick[share >= _TICK_SHARE] = t
    return np.repeat(tick, np.diff(starts))


def _arbitrage_sorted(rows: _Rows, eligible: np.ndarray) -> StaticArbitrage:
    """Static-arbitrage masks in sorted order over ``eligible`` rows."""
    eligible = eligible & (rows.ask > 0)
    mid_tol = np.maximum(quote_ticks(rows, eligible), MID_TOLERANCE)
    is_call = rows.right == 1
    mid_v, mid_b, trade_v, trade_b = strike_scan(
        rows.starts("underlying", "quote_date", "root", "right", "expiration"),
        is_call, rows.strike, rows.bid, rows.ask, eligible, mid_tol,
    )
    t_years = (rows.expiration - rows.quote_date) / 365.0
    otm = np.where(is_call, rows.strike >= rows.underlying_price, rows.strike <= rows.underlying_price)
    with np.errstate(invalid="ignore"):
        # two-sided quotes only: a zero-bid option's IV is mostly the rounding of its ask
        usable_iv = eligible & otm & (rows.bid > 0) & (t_years > 0) & (rows.iv > 0) & (rows.iv < MAX_PLAUSIBLE_IV)
    total_variance = np.where(usable_iv, rows.iv**2 * t_years, np.nan)
    mid_c = calendar_scan(
        rows.starts("underlying", "quote_date", "root", "right"),
        rows.expiration, rows.strike, total_variance, CALENDAR_REL_TOLERANCE,
    )
    return StaticArbitrage(
        checked=eligible,
        mid={"vertical": mid_v, "butterfly": mid_b, "calendar": mid_c},
        tradable={"vertical": trade_v, "butterfly": trade_b},
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
) -> RowValidation:
    """Check chain rows; every input row ends up in ``good`` or in ``quarantined`` with a reason.

    ``source`` names where the rows came from (a file) and is stored with quarantined rows.
    ``previous_days`` (from the last call's ``last_days``) lets the stale-underlying check see
    across calls; ``bars`` (underlying -> BAR_SCHEMA table) enables ``underlying_mismatch``.
    Each day's rows must all be in one call (duplicates and spreads are checked within it).
    """
    table = _conformed(table, source)
    rows = _prepare(table)
    reasons = _row_checks(rows)
    last_days = _day_checks(rows, reasons, previous_days or {}, bars or {})
    found = _arbitrage_sorted(rows, reasons == 0)
    _assign(reasons, found.tradable["vertical"], "vertical_arbitrage")
    _assign(reasons, found.tradable["butterfly"], "butterfly_arbitrage")

    reason_in_order = _to_input_order(rows, reasons)
    bad = reason_in_order > 0
    good = table.filter(pa.array(~bad))
    names = np.array(("",) + REASONS, dtype=object)[reason_in_order[bad]]
    quarantined = table.filter(pa.array(bad))
    quarantined = quarantined.append_column("reason", pa.array(names, pa.string())).append_column(
        "source", pa.array(np.full(quarantined.num_rows, source, dtype=object), pa.string())
    )
    quarantined = conform(quarantined, QUARANTINE_SCHEMA)
    assert good.num_rows + quarantined.num_rows == table.num_rows, "row accounting"
    counts = np.bincount(reasons, minlength=len(REASONS) + 1)
    return RowValidation(
        good=good,
        quarantined=quarantined,
        counts={name: int(counts[i + 1]) for i, name in enumerate(REASONS)},
        mid_violations={c: int(found.mid[c].sum()) for c in MID_CHECKS} | {"any": int(found.mid_any.sum())},
        last_days=last_days,
    )
