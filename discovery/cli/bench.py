"""``osd bench``: run the benchmark suites in ``benchmarks/`` and print their figures.

A suite is a module ``benchmarks/<name>.py`` with ``run(quick: bool) -> dict``. Figures are
ratios against a baseline measured in the same run wherever one exists, because the machines
are shared and noisy; the absolute numbers are printed too.
"""
from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import click

from backtest.errors import UserError

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


def available_suites() -> list[str]:
    return sorted(p.stem for p in BENCH_DIR.glob("*.py") if not p.stem.startswith("_"))


def load_suite(name: str):
    path = BENCH_DIR / f"{name}.py"
    if not path.exists():
        raise UserError(f"unknown benchmark suite {name!r} (available: {', '.join(available_suites())})")
    spec = importlib.util.spec_from_file_location(f"benchmarks.{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@click.command()
@click.option("--suite", "suites", multiple=True, help="Suite to run (repeatable); default: all.")
@click.option("--quick", is_flag=True, help="Smaller problem sizes, for a smoke run.")
@click.option("--json", "as_json", is_flag=True, help="Print all figures as one JSON document.")
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the JSON figures to this file.")
def bench(suites: tuple[str, ...], quick: bool, as_json: bool, out: str | None) -> None:
    """Run benchmark suites (benchmarks/*.py) and report their figures."""
    results = {}
    for name in suites or available_suites():
        module = load_suite(name)
        t0 = time.perf_counter()
        figures = module.run(quick=quick)
        figures["suite_wall_s"] = round(time.perf_counter() - t0, 2)
        results[name] = figures
        if not as_json:
            click.echo(f"[{name}]")
            for key, value in figures.items():
                click.echo(f"  {key}: {value}")
    text = json.dumps(results, indent=2, default=str)
    if as_json:
        click.echo(text)
    if out:
        Path(out).write_text(text + "\n")
