"""The ``osd`` command line (also ``python -m discovery``).

Subcommands live in their own modules and are imported only when invoked, so ``osd --help``
stays fast and never starts Ray or MLflow.
"""
from __future__ import annotations

import importlib

import click

from backtest.errors import UserError

# name -> "module:attribute" of a click command or group
SUBCOMMANDS: dict[str, str] = {
    "data": "discovery.cli.data:data",
    "bench": "discovery.cli.bench:bench",
    "discover": "discovery.cli.discover:discover",
    "features": "discovery.cli.features:features",
    "backtest": "discovery.cli.backtest_cmd:backtest",
    "demo": "discovery.cli.demo:demo",
    "baselines": "discovery.cli.baselines:baselines",
    "top": "discovery.cli.top:top",
    "tracking": "discovery.cli.tracking:tracking",
}

# one-line summaries shown by `osd --help` without importing the subcommand modules
SUMMARIES: dict[str, str] = {
    "data": "Create, import, inspect and validate option-chain datasets.",
    "bench": "Run the benchmark suites and report their figures.",
    "discover": "Search option structures and report which survive the honesty tests.",
    "features": "Build market-state features, regimes and edge detectors for a dataset.",
    "backtest": "Backtest one option structure (DNA) on a dataset and report its metrics.",
    "demo": "Synthesize the demo market (realistic SPY with a planted edge) and show it.",
    "baselines": "Run the seeds' hand-designed strategies with the same engine and costs.",
    "top": "Show the best structures of a discovery run, read back from MLflow.",
    "tracking": "MLflow tracking maintenance: send spooled results.",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args, lazy: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx, name):
        if name in self.lazy:
            module, attr = self.lazy[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)

    def format_commands(self, ctx, formatter):
        rows = [
            (name, SUMMARIES.get(name) or self.get_command(ctx, name).get_short_help_str(limit=70))
            for name in self.list_commands(ctx)
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=LazyGroup, lazy=SUBCOMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="options-structure-discovery")
def main() -> None:
    """Options Structure Discovery: find which option structures have a real out-of-sample edge."""


