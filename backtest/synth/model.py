"""Parameters of the synthetic market: per-symbol profiles and the regime / volatility model.

Anchors (REFERENCES.md, "Synthetic market anchors"): a calm regime near 12% and a stressed one
near 26% annualised volatility, stressed about 10% of the time (Hardy 2001); Heston-like mean
reverting variance with a negative spot/vol correlation; Bates-style negative jumps, rarer in
calm; SSVI surface with power-law phi inside the no-arbitrage conditions; a variance risk premium
of a few vol points, larger after shocks.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

CALM, STRESSED = 0, 1
REGIME_NAMES = ("calm", "stressed")


@dataclass(frozen=True)
class SymbolProfile:
    """What differs between underlyings: level, volatility scale, carry and liquidity."""

    spot: float
    vol_scale: float
    rate: float = 0.03
    div_yield: float = 0.015
    open_interest: float = 20_000.0  # near-the-money open interest of a liquid 30-day contract
    bar_volume: float = 8.0e7  # shares a day in calm markets


_KNOWN = {
    "SPY": SymbolProfile(spot=300.0, vol_scale=1.0, div_yield=0.015),
    "QQQ": SymbolProfile(spot=250.0, vol_scale=1.3, div_yield=0.006, open_interest=12_000.0, bar_volume=4.5e7),
    "IWM": SymbolProfile(spot=160.0, vol_scale=1.4, div_yield=0.012, open_interest=8_000.0, bar_volume=3.0e7),
    "DIA": SymbolProfile(spot=280.0, vol_scale=0.95, div_yield=0.018, open_interest=2_000.0, bar_volume=4.0e6),
}


def symbol_key(symbol: str) -> int:
    """A stable 32-bit number for a symbol (seeds its random streams; independent of other symbols)."""
    return zlib.crc32(symbol.encode())


def profile_for(symbol: str) -> SymbolProfile:
    """Known ETF-like symbols get fitting levels; others a deterministic profile from the name."""
    if symbol in _KNOWN:
        return _KNOWN[symbol]
    h = symbol_key(symbol)
    return SymbolProfile(
        spot=float(20 + h % 480),
        vol_scale=0.9 + (h >> 9) % 100 / 125.0,
        div_yield=0.005 + (h >> 17) % 20 / 1000.0,
        open_interest=2_000.0 + (h >> 3) % 8_000,
        bar_volume=5.0e6 + (h >> 5) % 20 * 1.0e6,
    )


@dataclass(frozen=True)
class MarketModel:
    """Dynamics (annualised, calendar-time) of the underlying and its implied surface.

    Two regimes (calm, stressed) follow a Markov chain stepped once per trading day. Within a
    regime, variance mean-reverts (Heston-like, full-truncation Euler) towards the regime's
    level; price jumps are Bernoulli per day with normal log sizes and kick variance up.
    """

    # regime chain: daily switching probabilities (stationary stressed share ~10%, ~60-day spells)
    p_calm_to_stressed: float = 0.1 / 0.9 / 60.0
    p_stressed_to_calm: float = 1.0 / 60.0
    # diffusive variance levels (vol_scale^2 applied) and dynamics
    variance_level: tuple[float, float] = (0.13**2, 0.25**2)
    variance_reversion: tuple[float, float] = (5.0, 10.0)
    vol_of_vol: tuple[float, float] = (0.20, 0.45)
    spot_vol_correlation: float = -0.7
    # share of the gap to the stressed level closed at once when stress starts
    stress_entry_variance_jump: tuple[float, float] = (0.3, 0.8)
    # physical drift (equity premium over r - q) per regime
    excess_drift: tuple[float, float] = (0.08, -0.45)
    # jumps: intensity per year, mean and sd of the log size, variance kick per jump
    jump_intensity: tuple[float, float] = (0.5, 4.0)
    jump_mean: tuple[float, float] = (-0.02, -0.04)
    jump_sd: tuple[float, float] = (0.02, 0.04)
    jump_variance_kick: float = 0.01
    # implied side: long-run variance and reversion speed priced into the term structure
    implied_long_run_variance: float = 0.17**2
    implied_reversion: float = 2.0
    # variance risk premium in vol points: a base plus a share of the excess over calm vol
    vrp_base: float = 0.025
    vrp_stress_share: float = 0.15
    # SSVI skew (power-law phi = eta * theta^-gamma); gamma <= 1/2, eta (1 + |rho|) <= 2
    ssvi_rho: float = -0.7
    ssvi_eta: float = 1.0
    ssvi_gamma: float = 0.4
    # null mode: the one constant volatility that drives the underlying (vol_scale applied)
    null_vol: float = 0.16

    def __post_init__(self) -> None:
        if not (0 < self.ssvi_gamma <= 0.5 and self.ssvi_eta * (1 + abs(self.ssvi_rho)) <= 2.0):
            raise ValueError("SSVI parameters outside the no-arbitrage conditions")


@dataclass(frozen=True)
class QuoteModel:
    """Listing and quoting conventions (SPY-like; strike steps scale with the symbol's level)."""

    tick: float = 0.01
    # strike steps (at a $300 level): fine near the money, coarser further out
    steps: tuple[float, float, float] = (1.0, 5.0, 10.0)
    fine_band: float = 0.05  # |K/S - 1| within which the fine step is listed
    medium_band: float = 0.15
    fine_max_dte: int = 70  # far expirations list only the medium and coarse steps
    # strike range: this many standard deviations (ATM vol * sqrt(T)) each side, within bounds
    range_sd_put: float = 3.0
    range_sd_call: float = 2.0
    range_min: float = 0.04
    range_max_put: float = 0.4
    range_max_call: float = 0.25
    # bid/ask width = max(tick, (abs + rel * price) * moneyness * dte * vol multipliers)
    width_abs: float = 0.02
    width_rel: float = 0.015
    weekly_horizon_days: int = 63
    horizon_days: int = 400


def steps_for(spot: float, quotes: QuoteModel) -> np.ndarray:
    """Strike steps for a symbol, scaled from the $300 reference to a round factor of its level."""
    scale = min((0.1, 0.25, 0.5, 1.0, 2.5, 5.0), key=lambda f: abs(np.log(spot / 300.0 / f)))
    return np.array(quotes.steps) * scale
