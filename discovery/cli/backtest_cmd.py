"""``osd backtest``: backtest one structure genome on a dataset and report its metrics."""
from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path

import click
import pandas as pd

from backtest.costs import FILL_MODELS, Costs
from backtest.errors import UserError

TABLE_FORMATS = (".csv", ".parquet")


def load_dna_text(value: str) -> str:
    """The DNA JSON itself, or the contents of the file named after '@'."""
    if not value.startswith("@"):
        return value
    path = Path(value[1:])
    try:
        return path.read_text()
    except OSError as exc:
        raise UserError(f"--dna {value}: cannot read {path}: {exc.strerror}") from None


def table_format(path: str, what: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in TABLE_FORMATS:
        raise UserError(f"{what} {path}: unknown extension {suffix!r}, expected one of {', '.join(TABLE_FORMATS)}")
    return suffix


def write_table(frame: pd.DataFrame, path: str, what: str) -> None:
    """Write CSV or Parquet (by extension) under a temporary name, then rename into place."""
    target = Path(path)
    suffix = table_format(path, what)
    if not target.parent.exists():
        raise UserError(f"{what} {path}: directory {target.parent} does not exist")
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False, date_format="%Y-%m-%d")
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


@click.command("backtest")
@click.option("--data", required=True, type=click.Path(), help="Dataset directory (or URI).")
@click.option("--symbol", required=True, help="Underlying, e.g. SPY.")
@click.option("--start", help="First day (YYYY-MM-DD); default: first day of the data.")
@click.option("--end", help="Last day (YYYY-MM-DD); default: last day of the data.")
@click.option("--dna", "dna_arg", required=True, help="Structure DNA as a JSON object, or @FILE holding one.")
@click.option("--fill", type=click.Choice(FILL_MODELS), default="cross", show_default=True,
              help="cross: buy at ask, sell at bid; legs_slippage: ORATS-style share of the width.")
@click.option("--trades-out", type=click.Path(dir_okay=False), help="Write the trade log (.csv or .parquet).")
@click.option("--equity-out", type=click.Path(dir_okay=False), help="Write the daily equity curve (.csv or .parquet).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON document.")
def backtest(data, symbol, start, end, dna_arg, fill, trades_out, equity_out, as_json) -> None:
    """Backtest one option structure (DESIGN §4 rules) and print its metrics."""
    from backtest.dna import SEED_RESULT_KEYS, StructureDNA
    from backtest.engine import run
    from backtest.index import ChainIndex

    for path, what in ((trades_out, "--trades-out"), (equity_out, "--equity-out")):
        if path:
            table_format(path, what)  # fail before the run, not after
    dna = StructureDNA.from_json(load_dna_text(dna_arg), ignore=SEED_RESULT_KEYS)
    index = ChainIndex.from_dataset(data, symbol, start, end)
    result = run(dna, index, start, end, Costs(fill=fill))
    if trades_out:
        write_table(result.trades, trades_out, "--trades-out")
    if equity_out:
        write_table(result.equity, equity_out, "--equity-out")
    first, last = result.equity["date"].iloc[[0, -1]]
    summary = {
        "symbol": symbol, "start": str(first.date()), "end": str(last.date()), "days": len(result.equity),
        "dna": dna.to_dict(), "fill_model": result.fill_model,
        "metrics": {k: _plain(v) for k, v in result.metrics.items()},
        "exit_reasons": result.trades["exit_reason"].value_counts().to_dict(),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{symbol} {summary['start']}..{summary['end']} ({summary['days']} days), "
               f"{dna.structure_type.value}, fill {result.fill_model}")
    for key, value in result.metrics.items():
        click.echo(f"  {key:18s} {value:.6g}" if isinstance(value, float) else f"  {key:18s} {value}")
    if summary["exit_reasons"]:
        click.echo("  exits: " + ", ".join(f"{k} {v}" for k, v in summary["exit_reasons"].items()))
