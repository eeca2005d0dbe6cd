"""``osd data ...``: create, import, inspect and validate datasets."""
from __future__ import annotations

import json

import click

from discovery.cli import LazyGroup

DATA_COMMANDS: dict[str, str] = {
    "info": "discovery.cli.data:info",
    "import": "discovery.cli.data_import:import_",
    "validate": "discovery.cli.data_validate:validate",
    "synth": "discovery.cli.synth:synth",
    "stats": "discovery.cli.stats:stats",
}


@click.group(cls=LazyGroup, lazy=DATA_COMMANDS)
def data() -> None:
    """Create, import, inspect and validate option-chain datasets."""


def _info_dict(path: str) -> dict:
    import pyarrow.compute as pc

    from backtest.store import Dataset

    ds = Dataset(path)
    out = {"path": path, "schema_version": ds.meta["schema_version"], "sources": ds.meta.get("sources", []),
           "underlyings": {}, "indices": {}, "quarantined_rows": ds.meta.get("quarantine", {}).get("rows", 0)}
    for u in ds.underlyings:
        t = ds.read_chains(u, columns=["quote_date", "root", "expiration", "strike", "right"])
        contracts = t.group_by(["root", "expiration", "strike", "right"]).aggregate([]).num_rows
        out["underlyings"][u] = {
            "start": pc.min(t["quote_date"]).as_py().isoformat() if t.num_rows else None,
            "end": pc.max(t["quote_date"]).as_py().isoformat() if t.num_rows else None,
            "trading_days": pc.count_distinct(t["quote_date"]).as_py(),
            "rows": t.num_rows,
            "contracts": contracts,
            "expirations": pc.count_distinct(t["expiration"]).as_py(),
        }
    for name in ds.indices:
        idx = ds.read_index(name)
        out["indices"][name] = {"rows": idx.num_rows}
    return out


@click.command()
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def info(path: str, as_json: bool) -> None:
    """Summarise the dataset at PATH: underlyings, date span, rows, contracts, expirations, source."""
    summary = _info_dict(path)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"dataset {path} (schema v{summary['schema_version']})")
    for src in summary["sources"]:
        click.echo(f"  source: {', '.join(f'{k}={v}' for k, v in src.items())}")
    click.echo(f"  {'underlying':<10} {'start':<10} {'end':<10} {'days':>6} {'rows':>12} {'contracts':>10} {'expirations':>11}")
    for u, s in summary["underlyings"].items():
        click.echo(f"  {u:<10} {s['start'] or '-':<10} {s['end'] or '-':<10} {s['trading_days']:>6} "
                   f"{s['rows']:>12,} {s['contracts']:>10,} {s['expirations']:>11,}")
    for name, s in summary["indices"].items():
        click.echo(f"  index {name}: {s['rows']:,} days")
    click.echo(f"  quarantined rows: {summary['quarantined_rows']:,}")
