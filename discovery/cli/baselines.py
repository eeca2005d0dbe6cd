"""``osd baselines``: the seeds' hand-designed strategies on a dataset, same engine and costs."""
from __future__ import annotations

import json

import click

from backtest.costs import FILL_MODELS, Costs
from backtest.errors import UserError
from discovery.baselines import strict_json

TABLE_COLUMNS = (("sharpe", "Sharpe", "{:.2f}"), ("total_return", "return", "{:.2%}"),
                 ("cagr", "CAGR", "{:.2%}"), ("max_drawdown", "max DD", "{:.2%}"),
                 ("n_trades", "trades", "{:d}"), ("win_rate", "win", "{:.0%}"),
                 ("profit_factor", "PF", "{:.2f}"))


def _worst_stress(report: dict) -> float:
    return min((s["pnl"] for s in report["stress"]["scenarios"]), default=0.0)


def format_table(reports: list[dict]) -> str:
    """One row per baseline: metrics, entries the risk limits blocked, worst stress P&L."""
    header = ["baseline"] + [title for _, title, _ in TABLE_COLUMNS] + ["blocked", "worst stress"]
    rows = []
    for r in reports:
        if "error" in r:
            rows.append([r["name"], f"not run: {r['error']}"])
            continue
        cells = [r["name"]] + [fmt.format(r[key]) for key, _, fmt in TABLE_COLUMNS]
        cells += [str(sum(r["blocked_entries"].values())), f"{_worst_stress(r):,.0f}"]
        rows.append(cells)
    widths = [max(len(str(row[i])) for row in [header] + [r for r in rows if len(r) == len(header)])
              for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)) if len(row) == len(header)
                     else f"{row[0].ljust(widths[0])}  {row[1]}")
    return "\n".join(lines)


@click.command("baselines")
@click.option("--data", required=True, type=click.Path(), help="Dataset directory (or URI).")
@click.option("--symbol", required=True, help="Underlying, e.g. SPY.")
@click.option("--start", help="First day (YYYY-MM-DD); default: first day of the data.")
@click.option("--end", help="Last day (YYYY-MM-DD); default: last day of the data.")
@click.option("--fill", type=click.Choice(FILL_MODELS), default="cross", show_default=True,
              help="cross: buy at ask, sell at bid; legs_slippage: ORATS-style share of the width.")
@click.option("--baseline", "names", multiple=True, help="Run only this baseline (repeatable); default: all.")
@click.option("--json", "as_json", is_flag=True, help="Print every baseline's report as one JSON document.")
def baselines(data, symbol, start, end, fill, names, as_json) -> None:
    """Run the seeds' hand-designed strategies (seed 000 profiles, seed 001 regime matrix, seed
    002 multi-book and its current strategy, seed 003 VolMachine) with the same engine and costs
    as discovery, and print a table (Sharpe, return, drawdown, trades, blocked entries, stress).

    Baselines other than seed 000's read the feature table of `osd features build`; without it
    they are listed as not run."""
    from backtest.index import ChainIndex
    from backtest.store import Dataset
    from models.baselines import run_baselines
    from models.features.build import read_feature_table

    dataset = Dataset(data)
    index = ChainIndex.from_dataset(dataset, symbol, start, end)
    try:
        features = read_feature_table(data, symbol)
    except UserError:
        features = None
    reports = run_baselines(index, features, start, end, Costs(fill=fill), names or None,
                            has_vix_options="VIX" in dataset.underlyings)
    if as_json:
        click.echo(json.dumps({"symbol": symbol, "fill_model": fill, "baselines": strict_json(reports)}, indent=2))
        return
    span = next((f"{r['start']}..{r['end']}" for r in reports if "start" in r), "")
    click.echo(f"{symbol} {span}, fill {fill}")
    click.echo(format_table(reports))
    for r in reports:
        for warning in r.get("warnings", []):
            click.echo(f"warning: {r['name']}: {warning}", err=True)
