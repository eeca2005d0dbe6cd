"""``osd top``: the best structures of a discovery run, read back from MLflow."""
from __future__ import annotations

import json

import click

# genes worth a glance in the table (the full DNA is in --json): label and format, by gene
KEY_GENES = (
    (("front_dte_min", "front_dte_max"), "dte {}-{}"),
    (("back_dte_min", "back_dte_max"), "back {}-{}"),
    (("long_strike_delta",), "long Δ{:.2f}"),
    (("short_strike_delta",), "short Δ{:.2f}"),
    (("spread_width_strikes",), "width {}"),
)
# (column, child-run metric) shown in the table
METRIC_COLUMNS = (
    ("oos_sharpe", "oos.sharpe"), ("lockbox_sharpe", "lockbox.sharpe_annual"),
    ("dsr", "honesty.dsr"), ("pbo", "honesty.pbo"),
)


def _genes(dna: dict) -> str:
    """The key genes this structure type uses (``backtest.dna.relevant_genes``)."""
    from backtest.dna import relevant_genes

    used = relevant_genes(dna["structure_type"])
    return " ".join(text.format(*(dna[name] for name in names))
                    for names, text in KEY_GENES if all(name in used and name in dna for name in names))


def _conditions(dna: dict, evaluation: dict | None) -> str:
    """When the structure trades: its regime set (named by the run's regime labels) and IV band."""
    parts = []
    codes = dna.get("entry_regime")
    if codes is not None:
        labels = (evaluation or {}).get("regimes")
        parts.append("regime " + ",".join(labels[c] if labels and c < len(labels) else str(c) for c in codes))
    low, high = dna.get("min_iv_percentile", 0.0), dna.get("max_iv_percentile", 100.0)
    if (low, high) != (0.0, 100.0):
        parts.append(f"IV pct {low:g}-{high:g}")
    return " ".join(parts) or "always"


@click.command()
@click.option("--experiment", required=True, help="MLflow experiment (the discovery config's name).")
@click.option("-n", "n", default=10, show_default=True, help="How many structures to show.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON list of {rank, dna, metrics, verdict, run_id, evaluation}; "
                   "`osd backtest --dna @FILE` replays it.")
@click.option("--tracking-uri", default=None,
              help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the local store in this directory).")
@click.option("--run", "parent_run_id", default=None,
              help="Discovery (parent) run id; default: the experiment's latest finished discovery run.")
def top(experiment: str, n: int, as_json: bool, tracking_uri: str | None, parent_run_id: str | None) -> None:
    """Show the best structures a discovery run reported, ranked, with their honesty statistics."""
    import pandas as pd

    from discovery.leaderboard import top_structures

    structures = top_structures(experiment, n=n, tracking_uri=tracking_uri, parent_run_id=parent_run_id)
    if as_json:
        click.echo(json.dumps([s.to_json() for s in structures], indent=2))
        return
    if not structures:
        click.echo(f"the latest discovery run of {experiment!r} reported no structures")
        return
    table = pd.DataFrame([
        {"rank": s.rank, "structure": s.dna.get("structure_type", "?"), "genes": _genes(s.dna),
         "when": _conditions(s.dna, s.evaluation),
         **{column: s.metrics.get(metric) for column, metric in METRIC_COLUMNS},
         "verdict": s.verdict}
        for s in structures
    ])
    click.echo(f"experiment {experiment!r}, discovery run {structures[0].parent_run_id}")
    click.echo(table.to_string(index=False, float_format=lambda x: f"{x:.3f}", na_rep="-"))
