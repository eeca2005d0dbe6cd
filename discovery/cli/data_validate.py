"""``osd data validate DIR``: check a dataset, quarantine bad rows, exit non-zero only if unusable."""
from __future__ import annotations

import json

import click


@click.command()
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-quarantine", is_flag=True, help="Only report; leave the dataset untouched.")
def validate(path: str, as_json: bool, no_quarantine: bool) -> None:
    """Validate the dataset at PATH (DESIGN §3.4) and move bad rows to quarantine/ with a reason.

    Exits non-zero only when the data are unusable (no dataset.json, no chain rows, a file that
    does not match the schema, or no row passing validation).
    """
    from backtest.validate import REASON_DESCRIPTIONS, validate_dataset

    report = validate_dataset(path, quarantine=not no_quarantine, progress=True)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(f"dataset {path}: {report.files:,} chain files, {report.rows:,} rows")
        click.echo(f"  {'check':<22} {'rows':>10}  meaning")
        for reason, n in report.counts.items():
            click.echo(f"  {reason:<22} {n:>10,}  {REASON_DESCRIPTIONS[reason]}")
        click.echo(f"  {'total quarantined':<22} {report.quarantined_rows:>10,}")
        click.echo(f"  {'good':<22} {report.good_rows:>10,}")
        if report.mid_violations:
            mid = ", ".join(f"{k} {v:,}" for k, v in report.mid_violations.items())
            click.echo(f"  static arbitrage at mid (reported, not quarantined): {mid}")
        for u, c in report.by_underlying.items():
            click.echo(f"  {u}: {c['good_rows']:,} of {c['rows']:,} rows good")
        if report.quarantine_applied:
            click.echo(f"  quarantined rows moved to {path}/quarantine/ "
                       f"({len(report.rewritten_files)} chain files rewritten)")
        elif report.quarantined_rows and report.usable:
            click.echo("  dataset left unchanged (--no-quarantine)")
        for message in report.messages:
            click.echo(f"  {message}")
    if not report.usable:
        raise click.ClickException(f"{path}: dataset unusable: " + "; ".join(report.messages))
