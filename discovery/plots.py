"""PNG plots for the tracking artifacts: search progress, equity and drawdown, payoff at expiry.

Figures are built on :class:`matplotlib.figure.Figure` directly (Agg canvas, no pyplot state), so
plotting works headless and never touches a global backend.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

DPI = 100


def _figure(width: float, height: float):
    # imported here so that a search that never plots (NullSink) never pays for matplotlib
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI)


@dataclass(frozen=True)
class PayoffLeg:
    """One option leg of a structure as entered: ``qty`` > 0 bought, < 0 sold (contracts);
    ``premium`` is the fill price per share (what was paid or received for one unit)."""

    right: str  # "C" or "P"
    strike: float
    qty: float
    premium: float


def payoff_at_expiry(legs: Sequence[PayoffLeg], prices: np.ndarray, multiplier: float = 100.0) -> np.ndarray:
    """P&L of the structure held to expiry at each underlying price, in currency units:
    sum over legs of qty x (intrinsic value - premium paid) x multiplier."""
    prices = np.asarray(prices, dtype=np.float64)
    pnl = np.zeros_like(prices)
    for leg in legs:
        if leg.right not in ("C", "P"):
            raise ValueError(f"payoff leg right must be 'C' or 'P', got {leg.right!r}")
        intrinsic = np.maximum(prices - leg.strike, 0.0) if leg.right == "C" else np.maximum(leg.strike - prices, 0.0)
        pnl += leg.qty * (intrinsic - leg.premium) * multiplier
    return pnl


def drawdown(equity: pd.Series) -> pd.Series:
    """Fractional drawdown from the running peak (0 at a new high, -0.25 = 25% below it)."""
    return equity / equity.cummax() - 1.0


def fitness_plot(history: Sequence[tuple[int, Mapping[str, float]]], path: Path, title: str) -> Path:
    """Every ``*fitness*`` metric against the generation number."""
    fig = _figure(7, 4)
    ax = fig.subplots()
    generations = [gen for gen, _ in history]
    keys = sorted({key for _, metrics in history for key in metrics if "fitness" in key})
    for key in keys:
        ax.plot(generations, [metrics.get(key, np.nan) for _, metrics in history], marker=".", label=key)
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if keys:
        ax.legend()
    fig.savefig(path)
    return path


def equity_plot(equity: pd.DataFrame, path: Path, title: str) -> Path:
    """Equity curve over its drawdown, from a frame with ``date`` and ``equity`` columns."""
    dates = pd.to_datetime(equity["date"])
    values = equity["equity"].astype(float)
    fig = _figure(8, 5)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot(dates, values, color="tab:blue")
    top.set_ylabel("equity")
    top.set_title(title)
    top.grid(alpha=0.3)
    bottom.fill_between(dates, drawdown(values) * 100.0, 0.0, color="tab:red", alpha=0.4)
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.savefig(path)
    return path


def payoff_plot(legs: Sequence[PayoffLeg], spot: float, path: Path, title: str,
                multiplier: float = 100.0) -> Path:
    """P&L at expiry over a price range covering the strikes and +-30% around the spot."""
    strikes = [leg.strike for leg in legs]
    low = min([spot * 0.7, *strikes]) * 0.95
    high = max([spot * 1.3, *strikes]) * 1.05
    prices = np.linspace(low, high, 400)
    pnl = payoff_at_expiry(legs, prices, multiplier)
    fig = _figure(7, 4)
    ax = fig.subplots()
    ax.plot(prices, pnl, color="black")
    ax.fill_between(prices, pnl, 0.0, where=pnl >= 0, interpolate=True, color="tab:green", alpha=0.3)
    ax.fill_between(prices, pnl, 0.0, where=pnl < 0, interpolate=True, color="tab:red", alpha=0.3)
    ax.axvline(spot, color="tab:blue", linestyle="--", label=f"spot at entry {spot:g}")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("underlying price at expiry")
    ax.set_ylabel("P&L")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.savefig(path)
    return path


def render(spec: Mapping, base: Path) -> None:
    """Draw one plot described by plain data (a tracking spool's ``render`` operation) into
    every path of ``spec["to"]`` (relative to ``base``). Kinds: ``fitness`` (``history``: [[gen,
    {metric: value}], ...]), ``equity`` (``equity``: {"date": [...], "equity": [...]}),
    ``payoff`` (``legs``: [[right, strike, qty, premium], ...], ``spot``, ``multiplier``)."""
    import shutil

    first, *copies = [base / path for path in spec["to"]]
    kind, title = spec["kind"], spec["title"]
    if kind == "fitness":
        fitness_plot([(gen, metrics) for gen, metrics in spec["history"]], first, title)
    elif kind == "equity":
        equity_plot(pd.DataFrame(spec["equity"]), first, title)
    elif kind == "payoff":
        payoff_plot([PayoffLeg(*leg) for leg in spec["legs"]], spec["spot"], first, title, spec["multiplier"])
    else:
        raise ValueError(f"unknown plot kind {kind!r}")
    for path in copies:
        shutil.copy(first, path)
