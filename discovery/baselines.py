"""Did discovery beat the guesses? The seeds' hand-designed baselines (:mod:`models.baselines`)
on a discovery run's lockbox, with the same dataset, costs and engine, measured by the same
function as the discovered structures' lockbox (:func:`discovery.walkforward.series_metrics`).

A reported structure beats the guesses when its lockbox Sharpe is above the best baseline's;
discovery as a whole beats them only when a structure that passed every honesty threshold does
(a rejected structure's lockbox Sharpe is one of many looks at the same span).
"""
from __future__ import annotations

import math
import warnings
from functools import partial
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from backtest.risk import PortfolioResult
from backtest.store import Dataset
from discovery import walkforward as wf
from discovery.evaluate import EvalContext, market_for
from models.baselines import baseline_runs, select, verdict

METRIC = "sharpe_annual"  # of the lockbox metrics, annualised (what the summary's "box SR" shows)
VIX_UNDERLYING = "VIX"


def strict_json(value: Any) -> Any:
    """Plain values as strict JSON: non-finite floats become strings ("inf"), numpy scalars numbers."""
    if isinstance(value, Mapping):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def account_lockbox_metrics(result: PortfolioResult) -> dict[str, Any]:
    """A baseline account's metrics as a discovered structure's lockbox reports them: daily
    mark-to-market returns of the account and the P&L of every trade (open ones marked)."""
    returns = wf.daily_returns(result.daily_pnl, result.equity)
    trade_pnl = np.concatenate([r.trade_pnl for r in result.results])
    return wf.series_metrics(returns, trade_pnl)


def lockbox_features(path: Path, underlying: str, last_day: np.datetime64) -> pd.DataFrame | None:
    """The feature table of ``underlying`` through ``last_day``, built into DIR/features (as
    `osd features build` does; only days not yet stored are computed). Every feature is causal,
    so a lockbox day's value uses that day's data and earlier only. None when the table cannot
    be written (a read-only dataset): the baselines that need it are then reported as not run."""
    from models.features.build import build_features, read_feature_table

    try:
        build_features(path, underlyings=[underlying])
    except OSError as exc:
        warnings.warn(f"{path}: cannot build the feature table the baselines need ({exc}); "
                      "run `osd features build` where the dataset is writable", stacklevel=2)
        return None
    return read_feature_table(path, underlying).loc[:pd.Timestamp(last_day)]


def lockbox_baselines(context: EvalContext, path: Path) -> list[dict[str, Any]]:
    """Every baseline on the lockbox span of ``context``: ``models.baselines.run_baselines``'
    report (strict JSON), plus ``lockbox`` (the structures' metric function) for those that ran."""
    market = market_for(context)
    lo, hi = context.layout.lockbox
    dates = market.index.dates
    features = lockbox_features(path, context.underlying, dates[hi - 1])
    start, end = dates[lo], dates[hi - 1]
    runs = baseline_runs(select(market.index, start, end), market.index, features, start, end, context.make_costs(),
                         VIX_UNDERLYING in Dataset(path).underlyings)
    entries = []
    for report, result in runs:
        entry = strict_json(report)
        if result is not None:
            entry["lockbox"] = account_lockbox_metrics(result)
        entries.append(entry)
    return entries


def structure_label(structure: Mapping[str, Any]) -> str:
    return f"#{structure['rank']} {structure['structure_type']}"


def compare(structures: Sequence[Mapping[str, Any]], baselines: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each reported structure against the best baseline by lockbox Sharpe, and the answer.

    Returns ``per_structure`` (rank -> the structure's comparison) and ``summary`` (the best
    baseline, the best discovered structure, whether discovery beats the guesses, one line)."""
    ran = [{"name": b["name"], METRIC: b["lockbox"][METRIC]} for b in baselines if "lockbox" in b]
    if not ran:
        reasons = "; ".join(f"{b['name']}: {b.get('error', 'not run')}" for b in baselines)
        return {"per_structure": {}, "summary": {
            "metric": f"lockbox {METRIC}", "discovery_beats_baselines": None,
            "answer": f"no baseline ran on the lockbox ({reasons}): nothing to compare with"}}
    values = {structure_label(s): s["lockbox"][METRIC] for s in structures}
    v = verdict(ran, values, METRIC)
    best_name, best_value = v["best_baseline"], v["best_baseline_value"]
    per_structure = {
        s["rank"]: {"metric": f"lockbox {METRIC}", "value": s["lockbox"][METRIC], "best_baseline": best_name,
                    "best_baseline_value": best_value, "beats_best_baseline": structure_label(s) in v["beaten_by"]}
        for s in structures}
    passed_winners = [s for s in structures if s["passed"] and per_structure[s["rank"]]["beats_best_baseline"]]
    beats = bool(passed_winners)
    top = max(structures, key=lambda s: s["lockbox"][METRIC], default=None)
    if top is None:
        answer = f"no structure reported; best baseline lockbox Sharpe {best_value:.2f} ({best_name})"
    else:
        shown = max(passed_winners, key=lambda s: s['lockbox'][METRIC]) if beats else top
        status = "passed" if shown["passed"] else "rejected"
        answer = (f"best discovered lockbox Sharpe {shown['lockbox'][METRIC]:.2f} ({structure_label(shown)}, "
                  f"{status}) vs best baseline {best_value:.2f} ({best_name}): ")
        if beats:
            answer += "discovery beats the guesses"
        elif v["discovery_beats_baselines"]:
            answer += ("discovery does not beat the guesses (only structures that failed the honesty "
                       "thresholds beat the best baseline)")
        else:
            answer += "discovery does not beat the guesses"
    return {"per_structure": per_structure, "summary": {
        "metric": f"lockbox {METRIC}", "best_baseline": best_name, "best_baseline_value": best_value,
        "beaten_by": v["beaten_by"], "beaten_by_passed": [structure_label(s) for s in passed_winners],
        "discovery_beats_baselines": beats, "answer": answer}}


def evaluate_baselines(context: EvalContext, paths: list[str]) -> list[dict[str, Any]]:
    """Worker side (a ``map_fn`` task, where the market is): the lockbox span and the baselines
    on it, for each dataset path (the run's one)."""
    dates = market_for(context).index.dates
    lo, hi = context.layout.lockbox
    return [{"start": str(dates[lo]), "end": str(dates[hi - 1]), "entries": lockbox_baselines(context, Path(p))}
            for p in paths]


def add_to_report(result: dict[str, Any], context: EvalContext, path: Path, map_fn=map) -> None:
    """Put the lockbox baselines and the comparison into a discovery report (in place): a
    ``baselines`` section and each reported structure's ``vs_baselines``. The baselines run
    through ``map_fn``, so on a cluster the driver never loads the market."""
    ((section,),) = map_fn(partial(evaluate_baselines, context), [[str(path)]])
    comparison = compare(result["discovered_structures"], section["entries"])
    for structure in result["discovered_structures"]:
        if structure["rank"] in comparison["per_structure"]:
            structure["vs_baselines"] = comparison["per_structure"][structure["rank"]]
    result["baselines"] = {**section, "comparison": comparison["summary"]}


def tracking_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """The baselines' lockbox figures and the answer as MLflow metrics of the parent run."""
    section = report.get("baselines")
    if not section:
        return {}
    out = {f"baseline.{b['name']}.lockbox_{key}": float(b["lockbox"][key])
           for b in section["entries"] if "lockbox" in b
           for key in (METRIC, "total_return", "max_drawdown", "n_trades")}
    beats = section["comparison"]["discovery_beats_baselines"]
    if beats is not None:
        out["baseline.best_lockbox_sharpe_annual"] = float(section["comparison"]["best_baseline_value"])
        out["discovery_beats_baselines"] = float(beats)
    return out
