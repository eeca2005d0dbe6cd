"""``osd demo``: the end-to-end demonstration on a synthetic market (``make demo``).

At this stage it prepares the demo dataset (five years of a realistic SPY-like market with the
example plant, fixed seed; reused when already generated with identical parameters), validates
it when the validator is available, and prints its summary and realism figures. Each step is a
function of the shared :class:`DemoRun`, so later stages (discovery, report) append steps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[2]
PLANT_FILE = REPO / "configs" / "planted_example.yaml"
DEMO_MARKET = {"symbols": ("SPY",), "start": "2019-01-01", "end": "2023-12-31", "seed": 2, "mode": "realistic"}


@dataclass
class DemoRun:
    root: Path
    refresh: bool = False
    notes: dict = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.root / "data"


def prepare_data(run: DemoRun) -> None:
    """Synthesize the demo market unless an identical one is already there."""
    from backtest.store import Dataset, StoreError
    from backtest.synth import load_plants, synthesize
    from backtest.synth.generator import requested_params

    plants = load_plants(PLANT_FILE)
    wanted = requested_params(plants=plants, **DEMO_MARKET)
    if run.data.exists() and not run.refresh:
        try:
            if Dataset(run.data).meta.get("generator") == wanted:
                click.echo(f"demo market: reusing {run.data} (same generator parameters)")
                return
        except StoreError:
            pass
    click.echo(f"demo market: synthesizing {run.data} (SPY {DEMO_MARKET['start']}..{DEMO_MARKET['end']}, "
               f"realistic + {', '.join(p.name for p in plants)}, seed {DEMO_MARKET['seed']})")
    run.root.mkdir(parents=True, exist_ok=True)
    synthesize(run.data, plants=plants, overwrite=True, progress=True, **DEMO_MARKET)


def validate(run: DemoRun) -> None:
    """Run the dataset validator (backtest.validate) when this checkout has it."""
    try:
        from backtest.validate import validate_dataset
    except ImportError:
        click.echo("validation: skipped (backtest.validate is not available in this checkout)")
        return
    report = validate_dataset(str(run.data))
    summary = report.to_dict() if hasattr(report, "to_dict") else report
    if not isinstance(summary, dict):
        click.echo(f"validation: {summary}")
        return
    # the headline numbers and every non-zero check count; the full report is `osd data validate`
    scalars = {k: v for k, v in summary.items() if isinstance(v, (bool, int, float, str)) and k != "path"}
    counts = {k: v for k, v in summary.get("counts", {}).items() if v}
    click.echo("validation: " + ", ".join(f"{k}={v}" for k, v in {**scalars, **counts}.items()))
    for message in summary.get("messages", []):
        click.echo(f"  {message}")


def summarize(run: DemoRun) -> None:
    """Print what `osd data info` and `osd data stats` print for the demo dataset."""
    from backtest.market_stats import dataset_stats
    from discovery.cli.data import _info_dict
    from discovery.cli.stats import format_stats

    info = _info_dict(str(run.data))
    for symbol, s in info["underlyings"].items():
        click.echo(f"dataset: {symbol} {s['start']}..{s['end']}: {s['trading_days']:,} days, {s['rows']:,} rows, "
                   f"{s['contracts']:,} contracts, {s['expirations']:,} expirations")
    click.echo("\n".join(format_stats(dataset_stats(str(run.data)))))


STEPS = (prepare_data, validate, summarize)


@click.command()
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(file_okay=False),
              help="Directory of the demo run (the market goes to OUT/data).")
@click.option("--refresh", is_flag=True, help="Regenerate the demo market even if it is up to date.")
def demo(out: str, refresh: bool) -> None:
    """Run the demonstration: synthesize the demo market, validate it, show its figures."""
    run = DemoRun(Path(out), refresh=refresh)
    for step in STEPS:
        step(run)
