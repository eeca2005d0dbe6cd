"""``osd discover``: search the structure space of a run config and report what survives."""
from __future__ import annotations

import importlib
import sys
import time
from functools import partial
from pathlib import Path

import click

from backtest.errors import UserError

# executor name -> "module:function" returning a context manager that yields a map-like callable.
# Kept as strings so that `osd discover` never imports a cluster library it does not use.
EXECUTORS: dict[str, str] = {
    "serial": "discovery.executors:serial",
    "processes": "discovery.executors:processes",
    "ray": "cluster.executor:ray_executor",
}


def executor_factory(name: str, address: str | None = None):
    """A ``(workers) -> context manager yielding map_fn`` for the chosen executor, imported only
    when chosen (so `osd discover --executor serial` never imports Ray)."""
    if name not in EXECUTORS:
        raise UserError(f"--executor: unknown executor {name!r} (expected one of {', '.join(EXECUTORS)})")
    if address and name != "ray":
        raise UserError(f"--address is only for --executor ray (got --executor {name})")
    module, attr = EXECUTORS[name].split(":")
    factory = getattr(importlib.import_module(module), attr)
    return partial(factory, address=address) if name == "ray" else factory


@click.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Run config YAML (see configs/demo.yaml).")
@click.option("--out", type=click.Path(file_okay=False), help="Output folder (default: runs/<config name>/).")
@click.option("--executor", default="ray", show_default=True, help=f"How genomes are evaluated: {', '.join(EXECUTORS)}.")
@click.option("--address", default=None,
              help="Ray cluster for --executor ray: auto (the running one), local (a new private one) or "
                   "ray://host:port; default: the running cluster if any, else a local one.")
@click.option("--workers", type=int, default=None, help="Evaluator processes (default: every CPU of the cluster).")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False),
              help="Continue the run checkpointed in this folder (same config and seed).")
@click.option("--seed", type=int, default=None, help="Override search.seed.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--tracking-uri", default=None,
              help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else the local store in this directory).")
@click.option("--no-tracking", is_flag=True, help="Do not log the run to MLflow.")
def discover(config_path, out, executor, address, workers, resume_dir, seed, quiet, tracking_uri,
             no_tracking) -> None:
    """Search option structures on a market, then deflate, cross-validate and lockbox-test the best."""
    from tqdm import tqdm

    from discovery.config import load_config
    from discovery.run import RESULT_FILE, discover as run_discovery
    from discovery.tracking import make_sink

    config = load_config(config_path, {"search.seed": seed} if seed is not None else None)
    open_executor = executor_factory(executor, address)
    out_dir = Path(resume_dir or out or Path("runs") / config.name)
    total = config.search.generations + 1
    started = time.perf_counter()
    # the sink first: its sender starts up (MLflow's import, the store) while the cluster does;
    # leaving its block waits (bounded) until everything is recorded, so a torn-down job loses nothing
    with make_sink(config.name, tracking_uri, enabled=not no_tracking) as sink:
        with tqdm(total=total, unit="gen", desc="discover", disable=quiet) as bar:
            def on_generation(record: dict) -> None:
                done = record["generation"] + 1
                bar.n = done
                bar.set_postfix(best=f"{record['best']:.4f}", evals=record["distinct_evaluated"],
                                diversity=f"{record['mean_distance']:.2f}")
                bar.refresh()
                # one plain line per generation for job logs (ray job logs, kubectl logs)
                eta = (time.perf_counter() - started) / done * (total - done)
                tqdm.write(f"generation {record['generation']}: best {record['best']:.4f} "
                           f"mean {record['population_mean']:.4f} evals {record['evaluations']} "
                           f"({record['evals_per_s']:.1f}/s) ETA {eta:.0f}s", file=sys.stderr)

            try:
                with open_executor(workers) as map_fn:
                    run_discovery(config, out_dir, map_fn=map_fn, resume=resume_dir is not None,
                                  sink=sink, on_generation=on_generation, progress=not quiet)
            except KeyboardInterrupt:
                raise click.ClickException(
                    f"interrupted; the last finished generation is checkpointed: resume with "
                    f"osd discover --config {config_path} --resume {out_dir}") from None
        click.echo((out_dir / "summary.txt").read_text())
        click.echo(f"written: {out_dir / RESULT_FILE}")
