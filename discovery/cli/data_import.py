"""``osd data import``: vendor option-chain files into the canonical store."""
from __future__ import annotations

import json

import click

from backtest.importers import FORMATS


@click.command("import")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", required=True, type=click.Choice(sorted(FORMATS)),
              help="Vendor format of the inputs: " + "; ".join(f"{k}: {v}" for k, v in FORMATS.items()) + ".")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Dataset directory; created if new, appended to (idempotently) if it exists.")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False),
              help="YAML column mapping (required with --format generic).")
@click.option("--quotes", type=click.Choice(["1545", "eod"]), default="1545", show_default=True,
              help="Cboe snapshot: 15:45 quotes with Cboe's IV/greeks, or end-of-day quotes.")
@click.option("--recompute-greeks", is_flag=True,
              help="Replace the vendor's IV and greeks with the engine's (BSM on the mid).")
@click.option("--rate", type=float, help="Continuously compounded risk-free rate, decimal (0.02 = 2%).")
@click.option("--dividend-yield", type=float, help="Continuous dividend yield, decimal.")
@click.option("--rates", "rates_file", type=click.Path(exists=True, dir_okay=False),
              help="CSV date,rate[,dividend_yield] (ISO dates, decimals; each row holds until the next).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Files imported in parallel (local processes, or Ray tasks at once).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: a process pool; ray: a Dask graph executed on Ray (for large jobs).")
@click.option("--ray-address", help="Ray cluster to join with --executor ray (default: start a local one).")
@click.option("--json", "as_json", is_flag=True, help="Print the import report as JSON.")
def import_(inputs, fmt, out, mapping, quotes, recompute_greeks, rate, dividend_yield, rates_file, workers,
            executor, ray_address, as_json) -> None:
    """Import vendor option-chain files INPUT... (plain, .gz or .zip) into the dataset at --out.

    Every block is validated; rejected rows go to the dataset's quarantine with a reason, and the
    report accounts for every input row. A failed import leaves the dataset as it was.
    """
    from tqdm import tqdm

    from backtest.errors import UserError
    from backtest.importers import FormatSpec
    from backtest.importers.pipeline import import_files, local_executor
    from backtest.importers.rates import RateSchedule

    if rates_file and rate is not None:
        raise UserError("--rate and --rates are alternatives: give one")
    if (fmt == "generic") != (mapping is not None):
        raise UserError("--mapping FILE.yaml is required with --format generic and only there")
    spec_mapping = None
    if mapping:
        from backtest.importers.generic import Mapping

        spec_mapping = Mapping.load(mapping).model_dump()
    rates = (RateSchedule.from_file(rates_file, dividend_yield) if rates_file
             else RateSchedule.constant(rate or 0.0, dividend_yield or 0.0))
    if executor == "ray":
        from cluster.dask_import import ray_executor

        run = ray_executor(ray_address, num_cpus=workers if ray_address is None else None)
    else:
        run = local_executor(workers)
    with tqdm(total=len(inputs), unit="file", desc="import", disable=as_json) as bar:
        def progress(report) -> None:
            bar.update(1)
            bar.set_postfix(rows=f"{report.input_rows:,}", refresh=False)

        summary = import_files(inputs, out, FormatSpec(fmt, spec_mapping, quotes), rates,
                               recompute_greeks=recompute_greeks, executor=run, progress=progress)
    report = {"out": summary.out, "files": summary.files, "input_records": summary.input_records,
              "input_rows": summary.input_rows, "imported": summary.imported,
              "quarantined": summary.quarantined_rows, "quarantine_reasons": summary.quarantined,
              "mid_arbitrage_rows": summary.mid_violations}
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"imported {summary.files} file(s) into {summary.out}: {summary.input_rows:,} rows read, "
               f"{summary.imported:,} imported, {summary.quarantined_rows:,} quarantined")
    for reason, n in sorted(summary.quarantined.items()):
        click.echo(f"  quarantined {reason}: {n:,}")
    for check, n in sorted(summary.mid_violations.items()):
        click.echo(f"  static arbitrage at mid prices (counted, kept) {check}: {n:,}")
