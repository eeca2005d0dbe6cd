"""``osd data stats``: realism figures of any dataset (synthetic or real)."""
from __future__ import annotations

import json

import click

# (key, label, format) of the figures printed for each underlying
_ROWS = [
    ("days", "trading days", "{:,}"),
    ("rows", "chain rows", "{:,}"),
    ("atm_iv_30d_mean", "mean 30-day ATM IV", "{:.1%}"),
    ("realized_vol_21d_mean", "mean realized vol (next 21 days)", "{:.1%}"),
    ("vrp_vol_points_mean", "mean IV - realized (vol points)", "{:+.2f}"),
    ("put_skew_share", "days 25d put IV > 25d call IV", "{:.1%}"),
    ("term_up_share", "days 90d ATM IV > 30d (upward)", "{:.1%}"),
    ("max_drawdown", "max drawdown of the underlying", "{:.1%}"),
    ("crossed_quotes", "crossed quotes (bid > ask)", "{:,}"),
    ("negative_quotes", "negative quotes", "{:,}"),
    ("vertical_violations", "vertical arbitrage at mid", "{:,}"),
    ("butterfly_violations", "butterfly arbitrage at mid", "{:,}"),
    ("calendar_violations", "calendar arbitrage (total variance)", "{:,}"),
    ("arbitrage_violation_rate", "rows with static arbitrage", "{:.4%}"),
]


def format_stats(stats: dict) -> list[str]:
    """Human-readable lines for the output of :func:`backtest.market_stats.dataset_stats`."""
    lines = [f"stats of {stats['path']}"]
    for symbol, s in stats["underlyings"].items():
        lines.append(f"  {symbol} (underlying closes from {s['close_source']})")
        for key, label, fmt in _ROWS:
            value = s.get(key)
            lines.append(f"    {label:<38} {'n/a' if value is None else fmt.format(value)}")
        for regime, share in s.get("term_up_share_by_regime", {}).items():
            text = "n/a" if share is None else f"{share:.1%}"
            lines.append(f"    {'  upward in regime ' + regime:<38} {text} "
                         f"({s['regime_share'][regime]:.1%} of days)")
    return lines


@click.command()
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--symbol", help="Only this underlying.")
@click.option("--price-tol", default=0.01, show_default=True, type=click.FloatRange(min=0),
              help="Dollars by which a vertical/butterfly at mid must be violated to count.")
def stats(path: str, as_json: bool, symbol: str | None, price_tol: float) -> None:
    """Realism figures of the dataset at PATH: IV level, variance risk premium, skew, term
    structure, drawdown, bad quotes and static-arbitrage violations."""
    from backtest.market_stats import dataset_stats

    result = dataset_stats(path, symbol, price_tol=price_tol)
    click.echo(json.dumps(result, indent=2) if as_json else "\n".join(format_stats(result)))
