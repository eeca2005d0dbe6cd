"""The discovery step of ``osd demo``: run configs/demo.yaml on the demo market and say plainly
whether the planted edge was recovered and which candidates were rejected as likely flukes."""
from __future__ import annotations

from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "configs" / "demo.yaml"


def demo_market() -> tuple[dict, Path]:
    """The synthetic market configs/demo.yaml describes, as ``synthesize`` keyword arguments,
    and its plant file."""
    synth = demo_config().data.synth
    market = {"symbols": tuple(synth.symbols), "start": str(synth.start), "end": str(synth.end),
              "seed": synth.seed, "mode": synth.mode}
    return market, demo_config().resolve_path(synth.plant)


def demo_config(data_path: Path | None = None):
    """configs/demo.yaml, pointed at an already prepared demo market when one is given."""
    import yaml

    from discovery.config import parse_config

    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    if data_path is not None:
        raw["data"] = {"path": str(Path(data_path).resolve())}
    return parse_config(raw, str(DEMO_CONFIG))


def _exposure(checks: dict) -> str:
    return (f"its leg {checks['exposed_leg']} takes the planted side at a median {checks['exposed_dte']:.0f} DTE and "
            f"|delta| {checks['exposed_abs_delta']:.2f} in its lockbox trades")


def run_discovery(data_path: Path, out_dir: Path, map_fn=map, sink=None) -> dict:
    """Discovery on the demo market, streamed into ``sink`` (a ``discovery.tracking`` sink; None:
    not tracked)."""
    from discovery.recovery import recovery
    from discovery.run import RESULT_FILE, discover

    config = demo_config(data_path)
    click.echo(f"discovery: {config.search.population} genomes x {config.search.generations} generations, "
               f"{config.walk_forward.folds} walk-forward folds, lockbox of {config.walk_forward.lockbox_days} days")
    lockbox_runs = {}
    result = discover(config, out_dir, map_fn=map_fn, sink=sink, on_lockbox=lockbox_runs.update)
    click.echo((out_dir / "summary.txt").read_text())
    rec = recovery(result, config, top_trades=lockbox_runs[1].result.trades if lockbox_runs else None)
    if rec["plant"] is None:
        click.echo("planted edge: the demo market has no plant to recover")
    elif rec["recovered"] and rec["passed"]:
        click.echo(f"planted edge RECOVERED: the top structure harvests plant {rec['plant']!r} "
                   f"({_exposure(rec['checks'])}) and passes every honesty threshold")
    elif rec["recovered"]:
        click.echo(f"planted edge FOUND BUT NOT CONFIRMED: the top structure harvests plant {rec['plant']!r} "
                   f"({_exposure(rec['checks'])}) "
                   f"but fails: {'; '.join(result['discovered_structures'][0]['reasons'])}")
    else:
        why = ("its traded legs do not take the planted side" if not rec["checks"]["harvests"] else
               "its exposed leg sits outside the planted DTE / |delta| slice in most lockbox trades")
        click.echo(f"planted edge NOT recovered: the top structure misses plant {rec['plant']!r}: {why}")
    click.echo(f"report: {out_dir / RESULT_FILE}; in MLflow: osd top --experiment {config.name} -n 5")
    return result
