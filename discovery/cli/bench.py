"""``osd bench``: run the benchmark suites in ``benchmarks/`` and print their figures.

A suite is a module ``benchmarks/<name>.py`` with ``run(quick: bool) -> dict``. Figures are
ratios against a baseline measured in the same run wherever one exists, because the machines
are shared and noisy; the absolute numbers are printed too, with the machine's state after each
suite (``benchmarks._machine``: the core's speed, the latency of its
level-2 cache and of memory) to compare runs by.
"""
from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

import click

from backtest.errors import UserError

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


class SuiteUnavailable(UserError):
    """A suite's inputs are not on this machine (the real-data samples in ../shared)."""


def available_suites() -> list[str]:
    return sorted(p.stem for p in BENCH_DIR.glob("*.py") if not p.stem.startswith("_"))


def _import_benchmark(name: str):
    # suites share helpers (benchmarks._long_sample): the checkout's root must be importable,
    # which the `osd` console script, unlike `python -m discovery`, does not make it
    root = str(BENCH_DIR.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module(f"benchmarks.{name}")


def load_suite(name: str):
    path = BENCH_DIR / f"{name}.py"
    if not path.exists():
        raise UserError(f"unknown benchmark suite {name!r} (available: {', '.join(available_suites())})")
    return _import_benchmark(name)


@click.command()
@click.option("--suite", "suites", multiple=True, help="Suite to run (repeatable); default: all.")
@click.option("--quick", is_flag=True, help="Smaller problem sizes, for a smoke run.")
@click.option("--json", "as_json", is_flag=True, help="Print all figures as one JSON document.")
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the JSON figures to this file.")
@click.option("--skip-unavailable", is_flag=True,
              help="Skip (and name) suites whose input data are missing instead of failing; "
                   "for the image build's numba pre-warm, which has no ../shared.")
def bench(suites: tuple[str, ...], quick: bool, as_json: bool, out: str | None, skip_unavailable: bool) -> None:
    """Run benchmark suites (benchmarks/*.py) and report their figures."""
    results = {}
    for name in suites or available_suites():
        module = load_suite(name)
        t0 = time.perf_counter()
        try:
            figures = module.run(quick=quick)
        except SuiteUnavailable as exc:
            if not skip_unavailable:
                raise
            click.echo(f"[{name}] skipped: {exc}", err=True)
            continue
        figures["suite_wall_s"] = round(time.perf_counter() - t0, 2)
        figures["machine_after"] = _import_benchmark("_machine").machine_state()
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
