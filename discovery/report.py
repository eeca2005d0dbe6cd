"""Verdicts and the readable summary of a discovery run."""
from __future__ import annotations

import math

from backtest.dna import relevant_genes
from discovery import honesty


def regime_names(codes, labels: list[str]) -> list[str] | None:
    return None if codes is None else [labels[c] for c in codes]


def plants_of(meta: dict) -> list[dict]:
    """The planted mispricings recorded by the synthetic generator (ground truth), if any."""
    return list((meta.get("generator") or {}).get("plants") or [])


def rejection_reasons(rec: dict, box: dict, dsr: float, pbo: dict | None, config) -> list[str]:
    """Why a structure is not counted as discovered (empty: it passed every threshold)."""
    h, reasons = config.honesty, []
    if dsr < h.dsr_min:
        reasons.append(f"deflated Sharpe {dsr:.3f} < {h.dsr_min} (likely a fluke of the search)")
    if pbo is None:
        reasons.append("PBO not computable (too few candidates or days)")
    elif pbo["pbo"] > h.pbo_max:
        reasons.append(f"PBO {pbo['pbo']:.2f} > {h.pbo_max} (the search overfits)")
    if rec["n_trades"] < config.fitness.min_trades:
        reasons.append(f"{rec['n_trades']} walk-forward trades < {config.fitness.min_trades}")
    if box["n_trades"] < h.min_lockbox_trades:
        reasons.append(f"{box['n_trades']} lockbox trades < {h.min_lockbox_trades}")
    if box["sharpe_annual"] < h.min_lockbox_sharpe:
        reasons.append(f"lockbox Sharpe {box['sharpe_annual']:.2f} < {h.min_lockbox_sharpe} (did not hold out of sample)")
    return reasons


def what_would_pass(rec: dict, n_trials: int, variance: float, dsr_min: float) -> dict:
    """What the deflated-Sharpe test would need for this structure's Sharpe to pass: more data
    (MinTRL against SR0, Bailey & López de Prado 2012/2014) or fewer trials."""
    sr, skew, kurt = rec["sharpe"], rec["skew"], rec["kurtosis"]
    days = honesty.min_observations_for_pass(sr, n_trials, variance, skew, kurt, dsr_min)
    trials = honesty.max_trials_for_pass(sr, rec["n_days"], variance, skew, kurt, dsr_min)
    return {
        "walk_forward_days_needed": None if math.isinf(days) else int(math.ceil(days)),
        "years_needed": None if math.isinf(days) else round(days / honesty.PERIODS_PER_YEAR, 1),
        "max_trials_for_pass": trials,
    }


LOCKBOX_COLUMNS = (("sharpe_annual", "box SR", "{:.2f}"), ("total_return", "return", "{:.2%}"),
                   ("max_drawdown", "max DD", "{:.2%}"), ("n_trades", "trades", "{:d}"),
                   ("win_rate", "win", "{:.0%}"))


def lockbox_table(result: dict) -> list[str]:
    """The reported structures and the seeds' baselines side by side on the lockbox (same data,
    costs and metric function), and the one-line answer: did discovery beat the guesses?"""
    section = result["baselines"]
    rows = [[f"#{s['rank']} {s['structure_type']}", "PASS" if s["passed"] else "rejected",
             *(fmt.format(s["lockbox"][key]) for key, _, fmt in LOCKBOX_COLUMNS),
             {True: "yes", False: "no", None: "-"}[s.get("vs_baselines", {}).get("beats_best_baseline")]]
            for s in result["discovered_structures"]]
    for b in section["entries"]:
        if "lockbox" in b:
            rows.append([b["name"], "baseline", *(fmt.format(b["lockbox"][key]) for key, _, fmt in LOCKBOX_COLUMNS), ""])
        else:
            rows.append([b["name"], "baseline", f"not run: {b['error']}"])
    header = ["structure / baseline", "kind", *(title for _, title, _ in LOCKBOX_COLUMNS), "beats best baseline"]
    full = [header] + [r for r in rows if len(r) == len(header)]
    widths = [max(len(r[i]) for r in full) for i in range(len(header))]

    def line(row: list[str]) -> str:
        if len(row) < len(header):  # a baseline that did not run: its reason runs on
            return "  ".join(c.ljust(w) for c, w in zip(row[:2], widths)) + "  " + row[2]
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    title = f"Lockbox {section['start']}..{section['end']}: discovered structures vs the seeds' baselines"
    return [title, line(header), "-" * len(line(header)), *map(line, rows),
            f"Did discovery beat the guesses? {section['comparison']['answer']}."]


def summary(result: dict) -> str:
    """A readable table of the reported structures, the rejections and the verdict."""
    lines = [
        f"Discovery run {result['config_name']!r} on {result['symbol']} "
        f"({result['data']['n_days']} trading days, fill model {result['fill_model']})",
        f"  distinct genomes evaluated (trials): {result['n_trials']}; best Sharpe expected from noise "
        f"alone among them: {result['expected_max_sharpe_annual']:.2f}/yr",
    ]
    pbo = result["pbo"]
    lines.append(f"  probability of backtest overfitting (CSCV over the best of {pbo['n_candidates']} structure types, "
                 f"{pbo['n_splits']} splits): "
                 f"{pbo['pbo']:.2f}" if pbo else "  probability of backtest overfitting: not computable")
    header = (f"{'#':>2} {'structure':<19} {'DTE':>9} {'dL':>5} {'dS':>5} {'regimes':<15} "
              f"{'WF SR':>6} {'DSR':>5} {'box SR':>6} {'trades':>6}  verdict")
    lines += ["", header, "-" * len(header)]
    for s in result["discovered_structures"]:
        regimes = ",".join(s["entry_regime_names"]) if s["entry_regime_names"] else "all"
        genes = relevant_genes(s["structure_type"])
        d_long, d_short = (f"{s[g]:>5.2f}" if g in genes else f"{'-':>5}" for g in ("long_strike_delta", "short_strike_delta"))
        verdict = "PASS" if s["passed"] else "reject: " + s["reasons"][0]
        lines.append(
            f"{s['rank']:>2} {s['structure_type']:<19} {s['front_dte_min']:>4}-{s['front_dte_max']:<4} "
            f"{d_long} {d_short} {regimes:<15} "
            f"{s['backtest_sharpe']:>6.2f} {s['deflated_sharpe']:>5.2f} {s['lockbox']['sharpe_annual']:>6.2f} "
            f"{s['n_trades']:>6}  {verdict}")
    if "baselines" in result:
        lines += ["", *lockbox_table(result)]
    lines += ["", f"Verdict: {result['verdict']}."]
    if not result["n_passed"] and result["discovered_structures"]:
        top = result["discovered_structures"][0]
        need = top.get("needed", {})
        years, trials = need.get("years_needed"), need.get("max_trials_for_pass", 0)
        sharpe = f"the top structure's walk-forward Sharpe ({top['backtest_sharpe']:.2f}/yr)"
        fewer = (f"a search of at most {trials} trials on this data would let it pass"
                 if trials else "no smaller search on this data would let it pass either")
        if years is None:
            lines.append(f"  What would be needed: {sharpe} is below the best Sharpe noise alone would show among "
                         f"{result['n_trials']} trials ({result['expected_max_sharpe_annual']:.2f}/yr), so more data "
                         f"at this number of trials cannot make it pass; {fewer}.")
        else:
            lines.append(f"  What would be needed: for {sharpe} to pass the deflated-Sharpe threshold, about "
                         f"{years:.1f} years of walk-forward data at this number of trials, or {fewer} "
                         f"(this run tried {result['n_trials']}).")
    plants = result["data"].get("plants")
    if plants:
        lines.append("  Planted truth: " + "; ".join(
            f"{p['name']} ({'/'.join(p['favours'])}, {p['dte'][0]}-{p['dte'][1]} DTE, |delta| "
            f"{p['abs_delta'][0]}-{p['abs_delta'][1]}, {'/'.join(p['regimes'])}, {p['vol_points']:+g} vol pts)"
            for p in plants))
    return "\n".join(lines) + "\n"
