"""Synthetic option markets with known truth (DESIGN §3.3).

Python API (what `osd data synth` calls; discovery tests call it directly)::

    from backtest.synth import synthesize, load_plants
    path = synthesize(out, symbols=("SPY",), start="2019-01-01", end="2023-12-31", seed=7,
                      mode="realistic" | "null" | "planted", plants=load_plants(file) or (),
                      overwrite=False, progress=False) -> pathlib.Path

Deterministic: every symbol draws from its own streams seeded by (seed, crc32(symbol)), so a
symbol's data do not depend on which other symbols are generated. Modes:

* ``realistic``: two regimes (calm ~12%, stressed ~26% vol, stressed ~10% of days), Heston-like
  variance with spot/vol correlation -0.7, Bates-like negative jumps (more in stress); an SSVI
  surface (power-law phi inside the no-arbitrage conditions) with put skew; ATM term structure
  from the expected average variance (upward in calm, inverted when variance is high) plus a
  variance risk premium of a few vol points, larger in stress.
* ``null``: the underlying has one constant volatility and drifts at r - q; options are BSM at
  exactly that volatility (flat surface), so every option's price is its expected discounted
  payoff: no structure has positive expected value before costs. The regime chain still runs
  but only labels days (it does not move volatility), so plants can be keyed to it.
* ``planted``: ``null`` plus the plants (see :mod:`backtest.synth.plants`); plants may also be
  laid on ``realistic``.

Written per underlying: chains (month parts), daily bars, a VIX-like index (``VIX`` for SPY,
``VIX_<SYM>`` otherwise: 100 x the 30-day variance-swap vol of the unplanted surface), and the
regime table ``DATASET/regimes/underlying=<SYM>/regimes.parquet`` (date, regime in
{calm, stressed}; read it with ``Dataset.read_regimes``). ``dataset.json`` records every
generator parameter under ``generator``.

Listing: XNYS trading days; weekly expirations for 63 days and monthlies out to 400 days;
strikes every $1 within 5% of spot (expirations up to 70 DTE), $5 within 15%, $10 beyond (for a
$300 underlying; steps scale with the level), a listed strike stays listed until expiration;
tick $0.01. Style 'A' (American, physically settled, as SPY/QQQ options): quotes are European
BSM values floored at intrinsic value, so the early-exercise premium of in-the-money puts is
ignored; greeks and ``iv`` are the BSM ones at the quote's surface volatility. Expiring rows
(DTE 0) are quoted at intrinsic value with null ``iv`` and limit greeks.
"""
from backtest.synth.generator import MODES, index_name, parse_symbols, synthesize
from backtest.synth.model import REGIME_NAMES, MarketModel, QuoteModel, profile_for
from backtest.synth.plants import Plant, PlantError, load_plants, parse_plants

__all__ = [
    "MODES", "REGIME_NAMES", "MarketModel", "Plant", "PlantError", "QuoteModel", "index_name",
    "load_plants", "parse_plants", "parse_symbols", "profile_for", "synthesize",
]
