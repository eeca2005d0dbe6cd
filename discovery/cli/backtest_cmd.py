"""``osd backtest``: backtest one structure genome on a dataset and report its metrics."""
from __future__ import annotations

import json
import math
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
import pandas as pd

from backtest.costs import FILL_MODELS, Costs
from backtest.errors import UserError

if TYPE_CHECKING:
    from backtest.dna import StructureDNA

TABLE_FORMATS = (".csv", ".parquet")
LOGGED_PREFIX = "lockbox."  # the child-run metrics a replay reproduces


def load_dna_text(value: str) -> str:
    """The DNA JSON itself, or the contents of the file named after '@'."""
    if not value.startswith("@"):
        return value
    path = Path(value[1:])
    try:
        return path.read_text()
    except OSError as exc:
        raise UserError(f"--dna {value}: cannot read {path}: {exc.strerror}") from None


@dataclass(frozen=True)
class Structure:
    """One structure to backtest: its DNA and, from an ``osd top --json`` item, its rank, logged
    metrics and the evaluation settings that replay its lockbox (None for a bare DNA)."""

    dna: "StructureDNA"
    rank: int | None = None
    logged: dict | None = None
    evaluation: dict | None = None


def parse_structures(text: str, rank: int | None) -> list[Structure]:
    """A DNA object, or the items of an ``osd top --json`` list of ``{"rank", "dna", "metrics",
    "evaluation", ...}`` (all of them, or the one of rank ``rank``)."""
    from backtest.dna import SEED_RESULT_KEYS, StructureDNA

    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return [Structure(StructureDNA.from_json(text))]  # raises its one-line error
    if not isinstance(data, list):
        if rank is not None:
            raise UserError("--rank applies only to an `osd top --json` list")
        return [Structure(StructureDNA.from_dict(data, ignore=SEED_RESULT_KEYS))]
    if not data or not all(isinstance(item, dict) and "dna" in item for item in data):
        raise UserError("--dna: a JSON list must be `osd top --json` output (items with a 'dna' key)")
    if rank is not None:
        data = [item for item in data if item.get("rank") == rank]
        if not data:
            raise UserError(f"--rank {rank}: no such rank in the list (ranks: "
                            f"{', '.join(str(item.get('rank')) for item in json.loads(text))})")
    return [Structure(StructureDNA.from_dict(item["dna"], ignore=SEED_RESULT_KEYS), item.get("rank"),
                      item.get("metrics"), item.get("evaluation")) for item in data]


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
@click.option("--data", type=click.Path(),
              help="Dataset directory (or URI); with an `osd top --json` file, default: the dataset it names.")
@click.option("--symbol", help="Underlying, e.g. SPY (not with an `osd top --json` file: it names it).")
@click.option("--start", help="First day (YYYY-MM-DD); default: first day of the data.")
@click.option("--end", help="Last day (YYYY-MM-DD); default: last day of the data.")
@click.option("--dna", "dna_arg", required=True,
              help="Structure DNA as a JSON object, or @FILE holding one or an `osd top --json` list "
                   "(each structure is replayed on its lockbox, with its entry gates and costs).")
@click.option("--rank", type=int, help="With an `osd top --json` list: only the structure of this rank.")
@click.option("--fill", type=click.Choice(FILL_MODELS), default=None,
              help="cross (default): buy at ask, sell at bid; legs_slippage: ORATS-style share of the width.")
@click.option("--trades-out", type=click.Path(dir_okay=False), help="Write the trade log (.csv or .parquet).")
@click.option("--equity-out", type=click.Path(dir_okay=False), help="Write the daily equity curve (.csv or .parquet).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (a list for several structures).")
def backtest(data, symbol, start, end, dna_arg, rank, fill, trades_out, equity_out, as_json) -> None:
    """Backtest option structures (DESIGN §4 rules) and print their metrics.

    A structure from `osd top --json` is replayed exactly as the discovery evaluated it (its
    dataset, lockbox span, entry gates, costs and sizing), and its logged lockbox metrics are
    shown next to the replayed ones."""
    for path, what in ((trades_out, "--trades-out"), (equity_out, "--equity-out")):
        if path:
            table_format(path, what)  # fail before the run, not after
    structures = parse_structures(load_dna_text(dna_arg), rank)
    if len(structures) > 1 and (trades_out or equity_out):
        raise UserError("--trades-out/--equity-out need one structure: pick it with --rank")
    replays = [s.evaluation is not None for s in structures]
    if any(replays):
        if not all(replays):
            raise UserError("--dna: some items of the list carry evaluation settings and some do not")
        given = [name for name, value in (("--symbol", symbol), ("--start", start), ("--end", end),
                                          ("--fill", fill)) if value]
        if given:
            raise UserError(f"{', '.join(given)}: an `osd top --json` structure is replayed with the "
                            "underlying, span and costs it was evaluated with")
        summaries = [_replay(s, data) for s in structures]
    else:
        if not data or not symbol:
            raise UserError("--data and --symbol are needed for a DNA without evaluation settings")
        summaries = [_backtest(s, data, symbol, start, end, fill or "cross") for s in structures]
    results = [result for _, result in summaries]
    if trades_out:
        write_table(results[0].trades, trades_out, "--trades-out")
    if equity_out:
        write_table(results[0].equity, equity_out, "--equity-out")
    documents = [summary for summary, _ in summaries]
    if as_json:
        listed = rank is None and structures[0].rank is not None  # a whole `osd top --json` list
        click.echo(json.dumps(documents if listed else documents[0], indent=2))
        return
    for summary in documents:
        _print_summary(summary)


def _summary(structure: Structure, result, symbol: str, metrics: dict) -> dict:
    first, last = result.equity["date"].iloc[[0, -1]]
    return {
        **({"rank": structure.rank} if structure.rank is not None else {}),
        "symbol": symbol, "start": str(first.date()), "end": str(last.date()), "days": len(result.equity),
        "dna": structure.dna.to_dict(), "fill_model": result.fill_model,
        "metrics": {k: _plain(v) for k, v in metrics.items()},
        "exit_reasons": result.trades["exit_reason"].value_counts().to_dict(),
    }


def _backtest(structure: Structure, data: str, symbol: str, start, end, fill: str):
    """A bare DNA over a span of a dataset, no entry gates: the engine's metrics."""
    from backtest.engine import run
    from backtest.index import ChainIndex

    index = ChainIndex.from_dataset(data, symbol, start, end)
    result = run(structure.dna, index, start, end, Costs(fill=fill))
    return _summary(structure, result, symbol, result.metrics), result


def _replay(structure: Structure, data: str | None):
    """A logged structure's lockbox as the discovery evaluated it, by the same function."""
    from discovery.evaluate import lockbox_backtest, replay_context

    context = replay_context(structure.evaluation, data)
    result, metrics = lockbox_backtest(context, structure.dna)
    summary = _summary(structure, result, context.underlying, metrics)
    logged = {k[len(LOGGED_PREFIX):]: v for k, v in (structure.logged or {}).items() if k.startswith(LOGGED_PREFIX)}
    summary["dataset"] = context.dataset
    summary["logged"] = logged
    summary["mismatched"] = sorted(k for k, v in logged.items()
                                   if k not in metrics or not _same(v, metrics[k]))
    return summary, result


def _same(logged: float, replayed) -> bool:
    replayed = float(replayed)
    return (math.isnan(logged) and math.isnan(replayed)) or math.isclose(logged, replayed, rel_tol=1e-9, abs_tol=1e-12)


def _print_summary(summary: dict) -> None:
    rank = f"#{summary['rank']} " if "rank" in summary else ""
    click.echo(f"{rank}{summary['symbol']} {summary['start']}..{summary['end']} ({summary['days']} days), "
               f"{summary['dna']['structure_type']}, fill {summary['fill_model']}")
    logged = summary.get("logged")
    for key, value in summary["metrics"].items():
        text = f"{value:.6g}" if isinstance(value, float) else f"{value}"
        if logged and key in logged:
            text = f"{text:<14} logged {logged[key]:.6g}"
        click.echo(f"  {key:18s} {text}")
    if summary["exit_reasons"]:
        click.echo("  exits: " + ", ".join(f"{k} {v}" for k, v in summary["exit_reasons"].items()))
    if logged is not None:
        click.echo("  replay matches the logged lockbox metrics" if not summary["mismatched"] else
                   f"  replay DIFFERS from the logged lockbox metrics: {', '.join(summary['mismatched'])}")
