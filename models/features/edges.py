"""Seed 003's five edge detectors. Each gives ``edge_<name>`` in [0, 1] (0: no edge, 1: the
strongest) and ``edge_<name>_side`` in {-1, 0, +1} (which way the edge points; 0 where no edge).

- ``vrp`` (volatility risk premium): r = atm_iv_30d / hv_20. Strength (r - 1) / 0.6 clipped, so
  the seed's signal level r = 1.3 is 0.5 and r >= 1.6 is 1; side +1 (implied rich: sell premium).
  Implied below realised (r < 1) gives strength (1 - r) / 0.4 clipped and side -1.
- ``term_structure``: z-score of the 30/90-day slope atm_iv_90d - atm_iv_30d against its own
  trailing 252 days; strength (|z| - 1) / 2 clipped (0 within one sigma, 1 at three); side +1
  for unusually steep contango, -1 for unusual flattening or backwardation.
- ``skew``: the same z-score rule on the 25-delta skew (put25 - call25 IV, 30 days); side +1 when
  puts are unusually rich (fear premium), -1 when unusually cheap.
- ``event_vol``: premium p = atm_iv_front / atm_iv_next - 1 of the nearest expiration over the
  next one (a priced event lifts the front expiry alone). Strength p / 0.4 clipped (the seed's
  20% premium is 0.5); side +1. Without an event calendar a broad backwardation also reads as
  an event premium.
- ``gamma_pressure``: closeness of spot to the max-|GEX| strike, (1 - |distance| / 3%) clipped,
  times min(1, gamma_concentration / 0.25); side = sign of total GEX (+1 dealers long gamma:
  pinning, -1 short gamma: moves amplified).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from models.features.rolling import YEAR_WINDOW, rolling_zscore

EDGES = ("vrp", "term_structure", "skew", "event_vol", "gamma_pressure")
EDGE_MIN_HISTORY = 60
EDGE_FEATURES = tuple(c for e in EDGES for c in (f"edge_{e}", f"edge_{e}_side")) + ("vrp_ratio", "term_slope_30_90")


def _clip01(x: pd.Series) -> pd.Series:
    return x.clip(0.0, 1.0)


def _zscore_edge(metric: pd.Series) -> tuple[pd.Series, pd.Series]:
    z = rolling_zscore(metric, YEAR_WINDOW, min_periods=EDGE_MIN_HISTORY)
    strength = _clip01((z.abs() - 1.0) / 2.0)
    return strength, np.sign(z).where(strength > 0, 0.0).where(z.notna())


def edge_features(f: pd.DataFrame) -> pd.DataFrame:
    """Edges from a feature frame holding the options and volatility features."""
    e = pd.DataFrame(index=f.index)
    r = f["atm_iv_30d"] / f["hv_20"]
    e["vrp_ratio"] = r
    e["edge_vrp"] = np.where(r >= 1.0, _clip01((r - 1.0) / 0.6), _clip01((1.0 - r) / 0.4))
    e["edge_vrp"] = e["edge_vrp"].where(r.notna())
    e["edge_vrp_side"] = np.sign(r - 1.0).where(e["edge_vrp"] > 0, 0.0).where(r.notna())

    e["term_slope_30_90"] = f["atm_iv_90d"] - f["atm_iv_30d"]
    e["edge_term_structure"], e["edge_term_structure_side"] = _zscore_edge(e["term_slope_30_90"])
    e["edge_skew"], e["edge_skew_side"] = _zscore_edge(f["put25_iv_30d"] - f["call25_iv_30d"])

    premium = f["atm_iv_front"] / f["atm_iv_next"] - 1.0
    e["edge_event_vol"] = _clip01(premium / 0.4)
    e["edge_event_vol_side"] = (e["edge_event_vol"] > 0).astype(float).where(premium.notna())

    closeness = _clip01(1.0 - f["max_gamma_distance_pct"].abs() / 0.03)
    e["edge_gamma_pressure"] = closeness * np.minimum(1.0, f["gamma_concentration"] / 0.25)
    e["edge_gamma_pressure_side"] = f["gamma_sign"].where(e["edge_gamma_pressure"] > 0, 0.0).where(
        e["edge_gamma_pressure"].notna())
    return e[list(EDGE_FEATURES)].copy()
