"""The seeds' hand-designed strategies as baselines in the same engine, data and costs
(DESIGN §9), so a discovery report can say whether discovery beat the guesses.

How a strategy maps onto the engine: every rule "on days where C, trade structure S with
parameters P" is one sleeve, a ``StructureDNA`` (S, P) with an entry mask (C, gates over the
feature table of :mod:`models.features`, evaluated by :func:`models.gates.entry_mask`). A rule
table with several branches (regime x direction, IV-rank tiers, books) is several sleeves with
disjoint or overlapping masks; ``when`` is a list of gate groups, a day passes when every gate of
some group passes (OR of ANDs). The sleeves of a baseline trade one account through
:func:`backtest.risk.run_portfolio`, which applies the strategy's account limits (total risk,
loss limits, drawdown kill switch, greeks) by switching mask days off; sleeve P&L adds up on
the account. See :mod:`models.baselines.catalog` for each seed's rules and what could not be
expressed exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from backtest.costs import Costs
from backtest.dna import StructureDNA
from backtest.errors import UserError
from backtest.index import ChainIndex
from backtest.risk import PortfolioResult, RiskLimits, Sleeve, run_portfolio, stress_report
from models.gates import entry_mask

GateGroup = tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class SleeveSpec:
    name: str
    dna: StructureDNA
    when: tuple[GateGroup, ...] = ((),)  # OR of AND-groups of gates; ((),) = every day


@dataclass(frozen=True)
class Baseline:
    name: str
    seed: str  # the seed file it comes from
    description: str
    sleeves: tuple[SleeveSpec, ...]
    limits: RiskLimits = RiskLimits()
    notes: tuple[str, ...] = ()  # where the seed's rule is approximated or left out
    needs_features: bool = True
    vix_hedge: Mapping[str, float] | None = None  # seed 002: {"max_vega_usd": -1000, "min_iv_rank": 0.6}


def sleeve_mask(features: pd.DataFrame | None, dates: np.ndarray, when: Sequence[GateGroup]) -> np.ndarray:
    """Entry mask over ``dates``: a day passes when all gates of one group pass."""
    dates = np.asarray(dates)
    if all(len(g) == 0 for g in when):
        return np.ones(len(dates), dtype=bool)
    if features is None:
        raise UserError("this baseline needs the feature table (run `osd features build --data DIR`)")
    mask = np.zeros(len(dates), dtype=bool)
    for group in when:
        mask |= entry_mask(features, dates, group)
    return mask


def strike_step(index: ChainIndex, start=None, end=None) -> float:
    """The most common distance between listed strikes on the window's first day (the listing
    grid, known on that day), used to turn the seeds' dollar widths into strike steps."""
    d0, _ = index.day_range(start, end)
    g0, g1 = index.day_group_start[d0], index.day_group_start[d0 + 1]
    steps = np.concatenate([
        np.diff(index.strike[index.group_row_start[g]:index.group_put_start[g]].astype(np.float64))
        for g in range(g0, g1)])
    steps = np.round(steps[steps > 0], 4)
    if not len(steps):
        raise UserError(f"{index.underlying}: no strike grid on {index.dates[d0]}")
    values, counts = np.unique(steps, return_counts=True)
    return float(values[np.argmax(counts)])


def run_baseline(baseline: Baseline, index: ChainIndex, features: pd.DataFrame | None, start=None, end=None,
                 costs: Costs = Costs()) -> PortfolioResult:
    dates = index.dates[slice(*index.day_range(start, end))]
    sleeves = [Sleeve(s.name, s.dna, sleeve_mask(features, dates, s.when)) for s in baseline.sleeves]
    return run_portfolio(sleeves, index, start, end, costs, baseline.limits)


def hedge_days(result: PortfolioResult, features: pd.DataFrame | None, rule: Mapping[str, float]) -> int:
    """Days on which seed 002's VIX-call hedge condition holds: portfolio vega (dollars per vol
    point) below ``max_vega_usd`` and IV rank above ``min_iv_rank``."""
    if features is None:
        return 0
    iv_rank = features["iv_rank"].reindex(pd.DatetimeIndex(result.dates.astype("datetime64[ns]"))).to_numpy(float)
    return int(np.sum((result.vega_usd < rule["max_vega_usd"]) & (iv_rank > rule["min_iv_rank"])))


def baseline_report(baseline: Baseline, result: PortfolioResult, features: pd.DataFrame | None,
                    index: ChainIndex, has_vix_options: bool) -> dict[str, Any]:
    """One baseline's results as a plain dict (JSON-ready)."""
    warnings = list(baseline.notes)
    out: dict[str, Any] = {
        "name": baseline.name, "seed": baseline.seed, "description": baseline.description,
        "sleeves": [s.name for s in baseline.sleeves], "limits": baseline.limits.to_dict(),
        "start": str(result.dates[0]), "end": str(result.dates[-1]),
    }
    out |= {k: _plain(v) for k, v in result.metrics().items()}
    out["reruns"] = result.reruns
    if baseline.vix_hedge is not None:
        days = hedge_days(result, features, baseline.vix_hedge)
        out["vix_hedge_days"] = days
        if not has_vix_options:
            warnings.append(f"the dataset has no VIX options: the VIX-call hedge is skipped "
                            f"(its condition held on {days} days)")
    out["stress"] = stress_report(result, index)
    out["warnings"] = warnings
    return out


def _plain(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


def select(index: ChainIndex, start=None, end=None, names: Iterable[str] | None = None) -> list[Baseline]:
    """The catalog's baselines (or those named), with widths in the window's strike steps."""
    from models.baselines.catalog import baselines

    chosen = baselines(strike_step(index, start, end))
    if names is None:
        return chosen
    wanted = list(names)
    unknown = sorted(set(wanted) - {b.name for b in chosen})
    if unknown:
        raise UserError(f"unknown baseline(s) {', '.join(unknown)}; known: {', '.join(b.name for b in chosen)}")
    return [b for b in chosen if b.name in wanted]


def baseline_runs(chosen: Sequence[Baseline], index: ChainIndex, features: pd.DataFrame | None, start, end,
                  costs: Costs, has_vix_options: bool) -> list[tuple[dict[str, Any], PortfolioResult | None]]:
    """:func:`run_baselines`' report of each baseline in ``chosen`` with the account run it
    describes (None for one not run), for callers that measure the runs themselves."""
    runs = []
    for b in chosen:
        if b.needs_features and features is None:
            runs.append(({"name": b.name, "seed": b.seed, "description": b.description,
                          "error": "no feature table (run `osd features build --data DIR`)"}, None))
            continue
        result = run_baseline(b, index, features, start, end, costs)
        runs.append((baseline_report(b, result, features, index, has_vix_options), result))
    return runs


def run_baselines(
    index: ChainIndex,
    features: pd.DataFrame | None,
    start=None,
    end=None,
    costs: Costs = Costs(),
    names: Iterable[str] | None = None,
    has_vix_options: bool = False,
) -> list[dict[str, Any]]:
    """Every baseline (or those named) on [start, end] with ``costs``: one plain dict each with
    the DESIGN §4 metrics of the account, blocked entries, a stress report of the positions
    open on the last day, and warnings. Baselines that need features are reported with an
    ``error`` when ``features`` is None. A discovery report runs them on its lockbox."""
    chosen = select(index, start, end, names)
    return [report for report, _ in baseline_runs(chosen, index, features, start, end, costs, has_vix_options)]


def verdict(reports: Sequence[Mapping[str, Any]], discovered: Mapping[str, float], metric: str = "sharpe") -> dict[str, Any]:
    """Did discovery beat the guesses? ``discovered``: structure name -> its ``metric`` on the
    same span (the lockbox). Compares with the best baseline that ran; ties do not beat it."""
    ran = [r for r in reports if "error" not in r]
    if not ran:
        raise UserError("no baseline ran on this span: nothing to compare the discovered structures with")
    best = max(ran, key=lambda r: r[metric])
    beaten_by = sorted((name for name, value in discovered.items() if value > best[metric]),
                       key=lambda name: -discovered[name])
    return {"metric": metric, "best_baseline": best["name"], "best_baseline_value": best[metric],
            "beaten_by": beaten_by, "discovery_beats_baselines": bool(beaten_by)}
