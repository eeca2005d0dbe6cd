"""Realism figures of any dataset (synthetic or real): what ``osd data stats`` prints.

Per underlying, from the chains (and the daily bars when present; otherwise the chains'
underlying price), reading one year at a time so memory stays bounded:

* ``atm_iv_30d_mean``: mean over days of the 30-day ATM implied vol (OTM IV interpolated at
  the put-call-parity forward per expiration, then linearly in total variance to 30 days).
* ``vrp_vol_points_mean``: mean of (30-day ATM IV minus the volatility realised over the
  following 21 trading days, sqrt(252/21 * sum of squared log returns)), in vol points.
* ``put_skew_share``: share of days where the 25-delta put IV exceeds the 25-delta call IV,
  on the expiration nearest 30 DTE (at least 7 DTE).
* ``term_up_share``: share of days where the 90-day ATM IV exceeds the 30-day one; by regime
  too when the dataset has a regime table (``term_up_share_by_regime``).
* ``max_drawdown``: deepest peak-to-trough fall of the underlying's close.
* ``crossed_quotes`` (bid > ask) and ``negative_quotes`` (bid or ask < 0) counts.
* static arbitrage at mid: vertical and butterfly violations larger than ``price_tol`` dollars,
  calendar violations in total variance at equal forward moneyness larger than ``variance_rel_tol``
  (relative); ``arbitrage_violation_rate`` = rows flagged by any check / rows.
"""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from backtest import market_stats_nb as nb
from backtest.store import Dataset, StoreError, chain_arrays

RV_DAYS = 21


def _group_bounds(*keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start/end indices of runs of equal consecutive key tuples."""
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    change = np.zeros(n, bool)
    change[0] = True
    for k in keys:
        change[1:] |= k[1:] != k[:-1]
    starts = np.flatnonzero(change)
    return starts, np.append(starts[1:], n)


def _chain_year(table: pa.Table, price_tol: float, variance_rel_tol: float) -> dict:
    """Counts and per-day surface figures of one block of whole days."""
    a = chain_arrays(table)
    if len(a.roots) > 1:  # e.g. SPX and SPXW share expirations: each trading class is its own chain
        order = np.lexsort((a.strike, ~a.is_call, a.expiration, a.root, a.quote_date))
        a = type(a)(**{f: (v[order] if isinstance(v, np.ndarray) else v) for f, v in vars(a).items()})
    mid = np.where((a.bid >= 0) & (a.ask >= a.bid), 0.5 * (a.bid + a.ask), np.nan)
    starts, ends = _group_bounds(a.quote_date, a.root, a.expiration)
    t, fwd, w_atm, put25, call25 = nb.expiry_points(
        starts, ends, a.quote_date, a.expiration, a.strike, a.is_call, mid, a.iv, a.delta,
        a.underlying_price, 0.25)
    group_day = a.quote_date[starts]
    day_starts, day_ends = _group_bounds(group_day)
    iv30 = nb.term_interpolate(day_starts, day_ends, t, w_atm, 30.0 / nb.YEAR_DAYS)
    iv90 = nb.term_interpolate(day_starts, day_ends, t, w_atm, 90.0 / nb.YEAR_DAYS)
    # skew on the expiration nearest 30 DTE with at least 7 DTE
    dte = np.round(t * nb.YEAR_DAYS)
    distance = np.where(dte >= 7, np.abs(dte - 30), np.inf)
    skew = np.full(len(day_starts), np.nan)
    for d, (s, e) in enumerate(zip(day_starts, day_ends)):
        g = s + int(np.argmin(distance[s:e]))
        if np.isfinite(distance[g]):
            skew[d] = put25[g] - call25[g]
    vertical, butterfly = nb.strike_arbitrage(starts, ends, a.strike, a.is_call, mid, price_tol)
    calendar = nb.calendar_arbitrage(day_starts, day_ends, starts, ends, t, fwd, a.strike, a.is_call,
                                     a.iv, variance_rel_tol)
    first_row = starts[day_starts]
    return {
        "days": a.quote_date[first_row],
        "spot": a.underlying_price[first_row],
        "iv30": iv30, "iv90": iv90, "skew": skew,
        "rows": len(a),
        "crossed": int(np.sum(a.bid > a.ask)),
        "negative": int(np.sum((a.bid < 0) | (a.ask < 0))),
        "vertical": int(vertical.sum()), "butterfly": int(butterfly.sum()), "calendar": int(calendar.sum()),
        "flagged": int(np.sum(vertical | butterfly | calendar)),
    }


def forward_realized_vol(close: np.ndarray, days: int = RV_DAYS) -> np.ndarray:
    """rv[t] = sqrt(252 / days * sum of squared log returns over t+1..t+days); NaN at the end."""
    r2 = np.diff(np.log(close)) ** 2
    out = np.full(len(close), np.nan)
    if len(r2) >= days:
        window = np.convolve(r2, np.ones(days), mode="valid")  # window[i] = sum r2[i:i+days]
        out[: len(window)] = np.sqrt(252.0 / days * window)
    return out


def max_drawdown(close: np.ndarray) -> float:
    if len(close) == 0:
        return math.nan
    return float(np.max(1.0 - close / np.maximum.accumulate(close)))


def _mean(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else None


def _share(flags: np.ndarray, valid: np.ndarray) -> float | None:
    return float(flags[valid].mean()) if valid.any() else None


def underlying_stats(ds: Dataset, symbol: str, price_tol: float = 0.01, variance_rel_tol: float = 0.01) -> dict:
    """The realism figures of one underlying (see the module docstring)."""
    parts = []
    for year in sorted({int(f.rsplit("year=", 1)[1].split("/", 1)[0]) for f in ds.chain_files(symbol)}):
        table = ds.read_chains(symbol, dt.date(year, 1, 1), dt.date(year, 12, 31))
        if table.num_rows:
            parts.append(_chain_year(table, price_tol, variance_rel_tol))
    if not parts:
        raise StoreError(f"{ds.uri}: no chain rows for {symbol!r}")
    days = np.concatenate([p["days"] for p in parts])
    iv30, iv90, skew = (np.concatenate([p[k] for p in parts]) for k in ("iv30", "iv90", "skew"))
    try:
        bars = ds.read_underlying(symbol)
        bar_days = bars["date"].cast(pa.int32()).to_numpy()
        close = bars["close"].to_numpy()
        close_source = "bars"
    except StoreError:
        bar_days, close, close_source = days, np.concatenate([p["spot"] for p in parts]), "chains"
    rv = forward_realized_vol(close)
    rv_on_chain_days = np.full(len(days), np.nan)
    pos = np.searchsorted(bar_days, days)
    found = (pos < len(bar_days)) & (bar_days[np.minimum(pos, len(bar_days) - 1)] == days)
    rv_on_chain_days[found] = rv[pos[found]]
    term_valid = np.isfinite(iv30) & np.isfinite(iv90)
    term_up = iv90 > iv30
    rows = sum(p["rows"] for p in parts)
    flagged = sum(p["flagged"] for p in parts)
    out = {
        "days": int(len(days)),
        "rows": int(rows),
        "close_source": close_source,
        "atm_iv_30d_mean": _mean(iv30),
        "vrp_vol_points_mean": None if (m := _mean(iv30 - rv_on_chain_days)) is None else 100.0 * m,
        "realized_vol_21d_mean": _mean(rv_on_chain_days),
        "put_skew_share": _share(skew > 0, np.isfinite(skew)),
        "term_up_share": _share(term_up, term_valid),
        "max_drawdown": max_drawdown(close),
        "crossed_quotes": sum(p["crossed"] for p in parts),
        "negative_quotes": sum(p["negative"] for p in parts),
        "vertical_violations": sum(p["vertical"] for p in parts),
        "butterfly_violations": sum(p["butterfly"] for p in parts),
        "calendar_violations": sum(p["calendar"] for p in parts),
        "arbitrage_violation_rate": flagged / rows if rows else None,
        "price_tol": price_tol,
        "variance_rel_tol": variance_rel_tol,
    }
    regimes = ds.read_regimes(symbol)
    if regimes is not None:
        reg_days = regimes["date"].cast(pa.int32()).to_numpy()
        labels = np.asarray(regimes["regime"].to_pylist(), dtype=object)
        idx = np.searchsorted(reg_days, days)
        known = (idx < len(reg_days)) & (reg_days[np.minimum(idx, len(reg_days) - 1)] == days)
        day_label = np.where(known, labels[np.minimum(idx, len(reg_days) - 1)], None)
        out["regime_share"] = {str(r): float(np.mean(day_label == r)) for r in pc.unique(regimes["regime"]).to_pylist()}
        out["term_up_share_by_regime"] = {
            r: _share(term_up, term_valid & (day_label == r)) for r in out["regime_share"]}
    return out


def dataset_stats(path: str, symbol: str | None = None, **tolerances) -> dict:
    """Figures for every underlying of the dataset at `path` (or only `symbol`); tolerances:
    price_tol (dollars), variance_rel_tol (relative)."""
    ds = Dataset(path)
    symbols = [symbol] if symbol else ds.underlyings
    if symbol and symbol not in ds.underlyings:
        raise StoreError(f"{path}: no chains for underlying {symbol!r} (available: {', '.join(ds.underlyings) or 'none'})")
    return {"path": str(path), "underlyings": {s: underlying_stats(ds, s, **tolerances) for s in symbols}}
