"""Portfolio risk layer over the backtest engine: several structures ("sleeves") traded on one
account under portfolio limits, and a stress report of open positions by full repricing.

What the engine already enforces per genome (DESIGN §4 "Sizing") stays there: risk per trade
(``max_position_pct``), the cap on open positions (``max_positions``) and on the genome's own
open risk (``max_total_risk_pct``). This module adds what needs the whole account:

=====================  ======================================================================
limit (``RiskLimits``)  blocks the entries of day t when (state known before day t's entries)
=====================  ======================================================================
max_drawdown           the account's drawdown through day t-1 reached it: kill switch, no new
                       entries for the rest of the run (open positions run to their exits)
daily_loss             day t-1 lost at least this share of the equity it started with
weekly_loss            the ISO week of day t has lost at least this share of the equity at the
                       end of the previous week (days before t)
max_total_risk         a sleeve's entry would lift the open risk (max loss or margin of the
                       positions still open after day t's exits, plus entries earlier the same
                       day) above this share of equity; sleeves enter in their listed order
max_delta              |dollar delta| of the open positions at day t's marks exceeds this share
                       of equity
max_short_vega         their dollar vega per vol point is below -(this share) x equity
=====================  ======================================================================

How it stays one implementation of the contract: each sleeve runs in the engine's kernel with an
entry mask; the layer only switches mask days off. Every rule for day t depends on days before
t (and day t's exits, which no day-t entry can change), so a sweep over the days in order finds
the first day where a rule blocks an entry the current run made, clears that mask day and reruns
just the affected sleeves; their results before t do not change. The final run of every sleeve
is a plain engine run with the final masks. Portfolio equity is the initial equity plus the sum
of the sleeves' daily P&L. Each sleeve sizes its trades on its own equity curve, which starts at
the account's equity (a sleeve does not see the other sleeves' P&L when it sizes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Sequence

import numpy as np
import pandas as pd

from backtest import engine_nb, risk_nb
from backtest.costs import Costs
from backtest.dna import StructureDNA
from backtest.engine import ManyResult, run_many, window_masks
from backtest.errors import UserError
from backtest.index import ChainIndex
from backtest.metrics import equity_metrics, trade_metrics
from backtest.pricing import bs_greeks

BLOCK_REASONS = ("kill_switch", "daily_loss", "weekly_loss", "total_risk", "delta", "vega")
STRESS_SPOT_SHOCKS = (-0.05, 0.05)
STRESS_VOL_SHOCKS = (-0.05, 0.05)
_MIN_VOL = 1e-4


@dataclass(frozen=True)
class RiskLimits:
    """Account-level limits as shares of equity; None switches a limit off."""

    max_total_risk: float | None = None
    daily_loss: float | None = None
    weekly_loss: float | None = None
    max_drawdown: float | None = None
    max_delta: float | None = None
    max_short_vega: float | None = None

    def __post_init__(self):
        bad = [f"{f.name}: {getattr(self, f.name)!r}, expected a share in (0, 1] or None"
               for f in fields(self)
               if getattr(self, f.name) is not None and not 0.0 < getattr(self, f.name) <= 1.0]
        if bad:
            raise UserError("invalid risk limits: " + "; ".join(bad))

    @property
    def needs_greeks(self) -> bool:
        return self.max_delta is not None or self.max_short_vega is not None

    def to_dict(self) -> dict[str, float | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Sleeve:
    """One structure of a portfolio and the days it may enter (bool mask over the index days or
    the window days; None: every day)."""

    name: str
    dna: StructureDNA
    mask: Any = None


@dataclass
class _SleeveState:
    """The arrays of one sleeve's current run that the sweep reads."""

    result: ManyResult
    pnl: np.ndarray  # [n_t]
    entry_risk: np.ndarray  # [n_t] risk of the trade entered that day (0: none)
    open_risk: np.ndarray  # [n_t] risk of positions open after the day's exits, before entries
    delta_usd: np.ndarray  # [n_t] greeks of those positions at the day's marks
    vega_usd: np.ndarray


@dataclass(frozen=True)
class PortfolioResult:
    dates: np.ndarray
    names: tuple[str, ...]
    structure_types: tuple[str, ...]
    results: tuple[ManyResult, ...]  # each sleeve's final engine run (one genome)
    masks: np.ndarray  # [n_sleeves, n_days] the final entry masks (the sleeves' minus blocked days)
    equity: np.ndarray  # account equity after each day
    daily_pnl: np.ndarray
    open_risk: np.ndarray  # open risk after each day's exits, before its entries
    delta_usd: np.ndarray  # greeks of those positions at the day's marks (zeros unless computed)
    vega_usd: np.ndarray
    blocked_entries: dict[str, int]  # entries a rule removed, by reason
    kill_date: np.datetime64 | None
    reruns: int
    limits: RiskLimits
    costs: Costs = field(default_factory=Costs)

    def trades(self) -> pd.DataFrame:
        """Every sleeve's trades (closed and open at the end) with the sleeve's name."""
        frames = [pd.DataFrame({
            "sleeve": name,
            "structure_type": structure,
            "entry_date": r.dates[r.trade_entry_day],
            "exit_date": r.dates[r.trade_exit_day],
            "days_held": r.trade_days_held,
            "contracts": r.trade_contracts,
            "risk": r.trade_risk,
            "pnl": r.trade_pnl,
            "exit_reason": [engine_nb.EXIT_REASONS[int(c)] for c in r.trade_reason],
            "front_expiration": _front_expiration(r),
        }) for name, structure, r in zip(self.names, self.structure_types, self.results)]
        return pd.concat(frames, ignore_index=True).sort_values(["entry_date", "sleeve"], ignore_index=True)

    def metrics(self) -> dict[str, Any]:
        """DESIGN §4 metrics of the account's equity curve and of all sleeves' closed trades."""
        calendar_days = int((self.dates[-1] - self.dates[0]).astype(int)) + 1
        out: dict[str, Any] = equity_metrics(self.equity, self.costs.initial_equity, calendar_days)
        pnl, held, risk = [], [], []
        for r in self.results:
            closed = r.trade_reason != engine_nb.EXIT_OPEN_AT_END
            pnl.append(r.trade_pnl[closed])
            held.append(r.trade_days_held[closed])
            risk.append(r.trade_risk[closed])
        out |= trade_metrics(np.concatenate(pnl), np.concatenate(held), np.concatenate(risk))
        out["fill_model"] = self.costs.fill
        out["blocked_entries"] = dict(self.blocked_entries)
        out["kill_date"] = None if self.kill_date is None else str(self.kill_date)
        return out


def _front_expiration(r: ManyResult) -> np.ndarray:
    exp = np.where(np.arange(engine_nb.MAX_LEGS)[None, :] < r.legs.n_legs[:, None], r.legs.expiration, np.iinfo(np.int32).max)
    return np.datetime64("1970-01-01", "D") + exp.min(axis=1).astype("timedelta64[D]")


def _window_days(result: ManyResult, n_t: int) -> tuple[np.ndarray, np.ndarray]:
    """Entry day and the last window day each trade is open after that day's exits (a trade
    exiting on day x is open after the exits of days entry+1..x-1; one still open at the end
    stays open through the last day)."""
    last = np.where(result.trade_reason == engine_nb.EXIT_OPEN_AT_END, n_t - 1, result.trade_exit_day - 1)
    return result.trade_entry_day.astype(np.int64), last.astype(np.int64)


def open_position_greeks(result: ManyResult, index: ChainIndex, start=None, end=None) -> tuple[np.ndarray, np.ndarray]:
    """Dollar delta and dollar vega (per vol point) of the positions open after each window
    day's exits (entered on an earlier day), at that day's marks. Needs ``run_many(legs=True)``."""
    if result.legs is None:
        raise UserError("portfolio greeks need the trades' legs: run_many(..., legs=True)")
    d0, d1 = index.day_range(start, end)
    entry, last = _window_days(result, d1 - d0)
    lg = result.legs
    return risk_nb.open_greeks(
        entry + 1, last, result.trade_contracts, lg.n_legs.astype(np.int64), lg.strike,
        lg.expiration.astype(np.int64), lg.root.astype(np.int64), lg.is_call, lg.qty.astype(np.int64),
        result.costs.multiplier, d0, d1 - d0, index.days, index.close, index.day_group_start,
        index.group_expiration, index.group_root, index.group_row_start, index.group_put_start,
        index.strike, index.bid, index.ask)


def _state(result: ManyResult, index: ChainIndex, start, end, greeks: bool) -> _SleeveState:
    n_t = len(result.dates)
    entry, last = _window_days(result, n_t)
    entry_risk = np.zeros(n_t)
    entry_risk[entry] = result.trade_risk  # one entry a day at most
    change = np.zeros(n_t + 1)
    np.add.at(change, entry + 1, result.trade_risk)
    np.add.at(change, last + 1, -result.trade_risk)
    open_risk = np.cumsum(change[:n_t])
    if greeks:
        delta_usd, vega_usd = open_position_greeks(result, index, start, end)
    else:
        delta_usd = vega_usd = np.zeros(n_t)
    return _SleeveState(result, result.daily_pnl[0], entry_risk, open_risk, delta_usd, vega_usd)


def run_portfolio(
    sleeves: Sequence[Sleeve],
    index: ChainIndex,
    start=None,
    end=None,
    costs: Costs = Costs(),
    limits: RiskLimits = RiskLimits(),
) -> PortfolioResult:
    """Backtest the sleeves on one account under ``limits`` (see the module docstring)."""
    if not sleeves:
        raise UserError("a portfolio needs at least one sleeve")
    names = [s.name for s in sleeves]
    if len(set(names)) != len(names):
        raise UserError(f"sleeve names must be unique, got {names}")
    d0, d1 = index.day_range(start, end)
    n_s, n_t = len(sleeves), d1 - d0
    allowed = np.stack([window_masks(s.mask, 1, index, d0, d1)[0] for s in sleeves])
    dnas = [s.dna for s in sleeves]
    greeks = limits.needs_greeks

    def run(which: list[int]) -> None:
        res = run_many([dnas[j] for j in which], index, start, end, costs, allowed[which], legs=True)
        for k, j in enumerate(which):
            states[j] = _state(_genome(res, k), index, start, end, greeks)

    states: list[_SleeveState] = [None] * n_s  # type: ignore[list-item]
    run(list(range(n_s)))
    reruns = 0
    blocked = dict.fromkeys(BLOCK_REASONS, 0)
    kill_day: int | None = None
    initial = costs.initial_equity
    equity = np.empty(n_t)
    prev_equity, peak = initial, initial
    day_start_equity = initial  # equity at the start of day t-1 (for the daily loss)
    week_start_equity, week = initial, None
    dates = states[0].result.dates
    iso_weeks = pd.DatetimeIndex(dates.astype("datetime64[ns]")).isocalendar()
    week_keys = list(zip(iso_weeks["year"], iso_weeks["week"]))
    for t in range(n_t):
        if week_keys[t] != week:
            week, week_start_equity = week_keys[t], prev_equity
        block: list[tuple[int, str]] = []
        if kill_day is None and limits.max_drawdown is not None and 1.0 - prev_equity / peak >= limits.max_drawdown - 1e-12:
            kill_day = t
            allowed[:, t:] = False
            for j in range(n_s):
                n_later = int(np.count_nonzero(states[j].entry_risk[t:]))
                if n_later:
                    blocked["kill_switch"] += n_later
                    block.append((j, "kill_switch"))
        elif kill_day is None:
            day_reason = None
            if t > 0 and limits.daily_loss is not None and prev_equity - day_start_equity <= -limits.daily_loss * day_start_equity:
                day_reason = "daily_loss"
            elif limits.weekly_loss is not None and prev_equity - week_start_equity <= -limits.weekly_loss * week_start_equity:
                day_reason = "weekly_loss"
            elif limits.max_delta is not None and abs(sum(s.delta_usd[t] for s in states)) > limits.max_delta * prev_equity:
                day_reason = "delta"
            elif limits.max_short_vega is not None and sum(s.vega_usd[t] for s in states) < -limits.max_short_vega * prev_equity:
                day_reason = "vega"
            risk_now = sum(s.open_risk[t] for s in states)
            for j in range(n_s):
                new_risk = states[j].entry_risk[t]
                if not new_risk:
                    continue
                reason = day_reason
                if reason is None and limits.max_total_risk is not None and risk_now + new_risk > limits.max_total_risk * prev_equity:
                    reason = "total_risk"
                if reason is None:
                    risk_now += new_risk
                else:
                    allowed[j, t] = False
                    blocked[reason] += 1
                    block.append((j, reason))
        if block:
            run(sorted({j for j, _ in block}))
            reruns += 1
        day_pnl = sum(s.pnl[t] for s in states)
        day_start_equity = prev_equity
        prev_equity += day_pnl
        equity[t] = prev_equity
        peak = max(peak, prev_equity)

    return PortfolioResult(
        dates=dates, names=tuple(names), structure_types=tuple(d.structure_type.value for d in dnas),
        results=tuple(s.result for s in states), masks=allowed, equity=equity,
        daily_pnl=np.diff(np.concatenate(([initial], equity))),
        open_risk=sum(s.open_risk for s in states), delta_usd=sum(s.delta_usd for s in states),
        vega_usd=sum(s.vega_usd for s in states), blocked_entries=blocked,
        kill_date=None if kill_day is None else dates[kill_day], reruns=reruns, limits=limits,
        costs=costs,
    )


def _genome(res: ManyResult, k: int) -> ManyResult:
    """Genome k of a run_many result as a one-genome result."""
    sel = res.trade_genome == k
    legs = res.legs
    return ManyResult(
        dates=res.dates, equity=res.equity[k:k + 1], daily_pnl=res.daily_pnl[k:k + 1],
        open_positions=res.open_positions[k:k + 1], n_trades=res.n_trades[k:k + 1],
        quote_gaps=res.quote_gaps[k:k + 1], trade_genome=np.zeros(int(sel.sum()), dtype=np.int64),
        trade_entry_day=res.trade_entry_day[sel], trade_exit_day=res.trade_exit_day[sel],
        trade_pnl=res.trade_pnl[sel], trade_contracts=res.trade_contracts[sel],
        trade_reason=res.trade_reason[sel], trade_risk=res.trade_risk[sel],
        trade_premium=res.trade_premium[sel], costs=res.costs,
        legs=None if legs is None else type(legs)(*(getattr(legs, f.name)[sel] for f in fields(legs))),
    )


# --------------------------------------------------------------------------- stress report


def open_legs(results: Sequence[ManyResult], day: int) -> pd.DataFrame:
    """Legs of the positions open at the end of window day ``day`` (after its entries), one
    row per leg: contracts, qty, strike, expiration (days since epoch), root code, is_call."""
    rows = []
    for r in results:
        if r.legs is None:
            raise UserError("a stress report needs the trades' legs: run_many(..., legs=True)")
        still_open = (r.trade_exit_day > day) | (r.trade_reason == engine_nb.EXIT_OPEN_AT_END)
        for i in np.flatnonzero((r.trade_entry_day <= day) & still_open):
            for j in range(int(r.legs.n_legs[i])):
                rows.append((int(r.trade_contracts[i]), int(r.legs.qty[i, j]), float(r.legs.strike[i, j]),
                             int(r.legs.expiration[i, j]), int(r.legs.root[i, j]), bool(r.legs.is_call[i, j])))
    return pd.DataFrame(rows, columns=["contracts", "qty", "strike", "expiration", "root", "is_call"])


def stress_report(
    results: PortfolioResult | ManyResult,
    index: ChainIndex,
    date=None,
    spot_shocks: Sequence[float] = STRESS_SPOT_SHOCKS,
    vol_shocks: Sequence[float] = STRESS_VOL_SHOCKS,
) -> dict[str, Any]:
    """P&L of the positions open at the end of ``date`` (default: the last day) under
    underlying gaps (relative) and volatility shifts (absolute, 0.05 = 5 vol points), each
    alone and combined, by full Black-Scholes repricing of every leg at the volatility its mid
    quote implies (r = q = 0, the marks reprice exactly). Legs without a quote that day or
    whose mid implies no volatility are counted in ``unpriced_legs`` and left out."""
    runs = list(results.results) if isinstance(results, PortfolioResult) else [results]
    # one account: the initial equity plus every genome's daily P&L
    equity = runs[0].costs.initial_equity + np.cumsum(sum(r.daily_pnl.sum(axis=0) for r in runs))
    dates = runs[0].dates
    day = len(dates) - 1 if date is None else int(np.searchsorted(dates, np.datetime64(pd.Timestamp(date).date(), "D")))
    if not 0 <= day < len(dates) or (date is not None and dates[day] != np.datetime64(pd.Timestamp(date).date(), "D")):
        raise UserError(f"stress date {date}: not a trading day of the run ({dates[0]} to {dates[-1]})")
    d = int(np.searchsorted(index.days, (dates[day] - np.datetime64("1970-01-01", "D")).astype(np.int64)))
    legs = open_legs(runs, day)
    spot = float(index.close[d])
    mult = runs[0].costs.multiplier
    scenarios = [(s, 0.0) for s in spot_shocks] + [(0.0, v) for v in vol_shocks] + \
        [(s, v) for s in spot_shocks for v in vol_shocks]
    out: dict[str, Any] = {"date": str(dates[day]), "spot": spot, "open_legs": len(legs),
                           "equity": float(equity[day]), "unpriced_legs": 0, "position_value": 0.0,
                           "scenarios": []}
    if legs.empty:
        out["scenarios"] = [{"spot_shock": s, "vol_shock": v, "pnl": 0.0, "pnl_pct_equity": 0.0} for s, v in scenarios]
        return out
    k = legs["strike"].to_numpy(np.float32)
    rows = risk_nb.leg_rows(d, legs["expiration"].to_numpy(np.int64), legs["root"].to_numpy(np.int64),
                            legs["is_call"].to_numpy(), k, index.day_group_start, index.group_expiration,
                            index.group_root, index.group_row_start, index.group_put_start, index.strike)
    tau = (legs["expiration"].to_numpy() - int(index.days[d])) / risk_nb.YEAR_DAYS
    is_call = legs["is_call"].to_numpy()
    mid = np.where(rows >= 0, 0.5 * (index.bid[rows].astype(np.float64) + index.ask[rows].astype(np.float64)), np.nan)
    vol = risk_nb.implied_vols(mid, is_call, np.full(len(legs), spot), k.astype(np.float64), tau)
    priced = np.isfinite(vol)
    size = (legs["contracts"] * legs["qty"]).to_numpy(np.float64) * mult
    out["unpriced_legs"] = int((~priced).sum())
    out["position_value"] = float(np.sum(size[priced] * mid[priced]))
    base = _reprice(is_call[priced], spot, k[priced], tau[priced], vol[priced])
    for s, v in scenarios:
        shocked = _reprice(is_call[priced], spot * (1.0 + s), k[priced], tau[priced], vol[priced] + v)
        pnl = float(np.sum(size[priced] * (shocked - base)))
        out["scenarios"].append({"spot_shock": s, "vol_shock": v, "pnl": pnl,
                                 "pnl_pct_equity": pnl / out["equity"] if out["equity"] > 0 else math.nan})
    return out


def _reprice(is_call, spot, strike, tau, vol) -> np.ndarray:
    return bs_greeks(is_call, spot, strike, tau, 0.0, 0.0, np.maximum(vol, _MIN_VOL)).price
