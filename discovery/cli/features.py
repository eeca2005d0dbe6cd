"""``osd features ...``: build the per-day feature table of a dataset (DESIGN §8)."""
from __future__ import annotations

import os
import warnings
from concurrent.futures import ProcessPoolExecutor

import click

from discovery.cli import LazyGroup

FEATURE_COMMANDS: dict[str, str] = {
    "build": "discovery.cli.features:build",
}


@click.group(cls=LazyGroup, lazy=FEATURE_COMMANDS)
def features() -> None:
    """Build market-state features, regimes and edge detectors for a dataset."""


def _local_map(workers: int):
    def run(fn, tasks):
        tasks = list(tasks)
        if workers <= 1 or len(tasks) <= 1:
            yield from map(fn, tasks)
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            yield from pool.map(fn, tasks)
    return run


def _ray_dask_map(workers: int):
    """Dask tasks scheduled on a Ray cluster (RAY_ADDRESS, or a local Ray if unset), in batches
    of ``workers`` * 4 so that progress can be reported."""
    def run(fn, tasks):
        import dask
        import ray
        from ray.util.dask import ray_dask_get

        ray.init(address=os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True, log_to_driver=False)
        tasks = list(tasks)
        batch = max(1, workers * 4)
        for i in range(0, len(tasks), batch):
            yield from dask.compute(*[dask.delayed(fn)(t) for t in tasks[i:i + batch]], scheduler=ray_dask_get)
    return run


@click.command()
@click.option("--data", "data", required=True, help="Dataset directory to build features for (written to DIR/features/).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Parallel workers (default: the number of CPU cores).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: a process pool on this machine; ray: Dask on the Ray cluster at RAY_ADDRESS.")
@click.option("--regimes", "regimes_file", type=click.Path(dir_okay=False), default=None,
              help="A regime_assignments.parquet (date, regime[, underlying]); default DIR/regime_assignments.parquet if present.")
@click.option("--rebuild", is_flag=True, help="Recompute every day instead of only the days not yet present.")
def build(data: str, workers: int | None, executor: str, regimes_file: str | None, rebuild: bool) -> None:
    """Write DIR/features/underlying=S/year=Y.parquet: one row per (underlying, day), one column per feature.

    Incremental: only days without features are computed (with the history the rolling windows
    need). Missing inputs (no VIX, no bars, chains without greeks) leave only the features that
    need them NaN and are reported as warnings.
    """
    from tqdm import tqdm

    from models.features.build import MissingInputWarning, build_features

    workers = workers or os.cpu_count() or 1
    mapper = (_ray_dask_map if executor == "ray" else _local_map)(workers)
    bar = tqdm(unit="partition", desc="features", disable=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MissingInputWarning)  # reported once each below
        summaries = build_features(data, mapper=mapper, rebuild=rebuild, regimes_file=regimes_file,
                                   progress=bar.update, on_plan=lambda n: setattr(bar, "total", n))
    bar.close()
    for s in summaries:
        for message in s.missing:
            click.echo(f"warning: {message}", err=True)
        years = ", ".join(map(str, s.years_written)) or "none"
        click.echo(f"{s.underlying}: {s.days_computed} new day(s) of {s.days_total}; years written: {years}")
