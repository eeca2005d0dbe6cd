"""``osd data synth``: generate a synthetic market (DESIGN §3.3) into a new dataset."""
from __future__ import annotations

import click


@click.command()
@click.option("--out", required=True, help="Dataset directory to create.")
@click.option("--symbols", default="SPY", show_default=True, help="Comma-separated tickers, e.g. SPY,QQQ.")
@click.option("--start", required=True, help="First day, YYYY-MM-DD.")
@click.option("--end", required=True, help="Last day, YYYY-MM-DD.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Random seed.")
@click.option("--mode", default="realistic", show_default=True,
              help="realistic | null (fairly priced) | planted (null plus --plant mispricings).")
@click.option("--plant", "plant_file", type=click.Path(dir_okay=False),
              help="YAML plant file (see configs/planted_example.yaml); with realistic or planted.")
@click.option("--overwrite", is_flag=True, help="Replace an existing non-empty output directory.")
def synth(out: str, symbols: str, start: str, end: str, seed: int, mode: str, plant_file: str | None,
          overwrite: bool) -> None:
    """Generate a deterministic synthetic option market into the dataset directory OUT."""
    from backtest.synth import load_plants, synthesize

    plants = load_plants(plant_file) if plant_file else ()
    path = synthesize(out, symbols, start, end, seed, mode, plants, overwrite=overwrite, progress=True)
    click.echo(f"wrote {path}")
