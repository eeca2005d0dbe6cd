"""The options-chain features of seed 004 §3 (40 features, seven families) plus the IV surface
points the edge detectors need, per (underlying, day).

Two steps: :func:`daily_raw` runs the numba kernel over a ChainArrays (one pass, one row of raw
aggregates per day; this is the expensive, parallel part), and :func:`options_features` turns
the raw daily rows into features, adding the history-dependent ones (changes, z-scores, IV rank
and percentile over trailing windows; causal).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.store import ChainArrays
from models.features import options_nb
from models.features.rolling import flag, ratio, rolling_percentile, rolling_rank, rolling_zscore

VOLUME_WINDOW = 20
PCR_WINDOW = 60
GAMMA_ZONE_PCT = 0.03  # seed 004: within 3% of the max-gamma strike

# family -> features (seed 004 §3 names; ``max_pain_*`` of the seed is the max-|GEX| strike)
OPTIONS_FEATURES: dict[str, tuple[str, ...]] = {
    "volume_oi": ("call_oi", "put_oi", "total_oi", "call_volume", "put_volume", "total_volume",
                  "oi_change_pct", "volume_zscore"),
    "put_call": ("pcr_oi", "pcr_volume", "pcr_zscore", "pcr_extreme_bullish", "pcr_extreme_bearish",
                 "pcr_change"),
    "gamma": ("max_gamma_strike", "max_gamma_distance_pct", "gex_total_bn", "gamma_sign",
              "gamma_concentration", "gamma_flip_strike", "gamma_flip_distance_pct"),
    "iv": ("atm_call_iv", "atm_put_iv", "iv_skew", "put_call_iv_ratio", "iv_percentile", "iv_rank",
           "iv_change_pct"),
    "greeks": ("net_delta", "net_gamma", "net_vega", "net_theta", "net_delta_abs"),
    "term": ("front_month_oi", "next_month_oi", "roll_ratio", "term_curve_slope"),
    "composite": ("trend_signal", "sentiment_signal", "gamma_signal"),
}
# surface points kept as features in their own right (used by edges and regimes)
SURFACE_FEATURES = ("chain_spot", "atm_iv_30d", "atm_iv_90d", "call25_iv_30d", "put25_iv_30d",
                    "atm_iv_front", "atm_iv_next")
_IV_POINTS = ("atm_call_iv", "atm_put_iv", "iv_skew", "put_call_iv_ratio", "iv_percentile", "iv_rank",
              "iv_change_pct", "term_curve_slope") + SURFACE_FEATURES[1:]
# chain column -> the options features and edges that need it (for "chain without X" warnings)
CHAIN_COLUMN_FEATURES: dict[str, tuple[str, ...]] = {
    "delta": ("net_delta", "net_delta_abs", "iv_skew", "call25_iv_30d", "put25_iv_30d", "edge_skew", "edge_skew_side"),
    "gamma": ("net_gamma",) + OPTIONS_FEATURES["gamma"] + ("gamma_signal", "edge_gamma_pressure", "edge_gamma_pressure_side"),
    "theta": ("net_theta",),
    "vega": ("net_vega",),
    "iv": _IV_POINTS + ("vrp_ratio", "term_slope_30_90") + tuple(
        f"edge_{e}{s}" for e in ("vrp", "term_structure", "skew", "event_vol") for s in ("", "_side")),
    "open_interest": OPTIONS_FEATURES["greeks"] + OPTIONS_FEATURES["gamma"] + OPTIONS_FEATURES["term"][:3] + (
        "call_oi", "put_oi", "total_oi", "oi_change_pct", "pcr_oi", "pcr_zscore", "pcr_extreme_bullish",
        "pcr_extreme_bearish", "pcr_change", "trend_signal", "sentiment_signal", "gamma_signal",
        "edge_gamma_pressure", "edge_gamma_pressure_side"),
    "volume": ("call_volume", "put_volume", "total_volume", "volume_zscore", "pcr_volume"),
}
ALL_OPTIONS_FEATURES = tuple(f for fs in OPTIONS_FEATURES.values() for f in fs) + SURFACE_FEATURES


def day_starts(quote_date: np.ndarray) -> np.ndarray:
    """Row offsets of each day's block in a chain sorted by quote_date (n_days + 1 entries)."""
    cuts = np.flatnonzero(np.diff(quote_date)) + 1
    return np.concatenate(([0], cuts, [len(quote_date)])).astype(np.int64)


def daily_raw(chain: ChainArrays) -> pd.DataFrame:
    """Raw per-day aggregates (columns ``options_nb.RAW_COLUMNS``) indexed by date."""
    if len(chain) == 0:
        return pd.DataFrame(columns=list(options_nb.RAW_COLUMNS), index=pd.DatetimeIndex([], name="date"),
                            dtype=float)
    starts = day_starts(chain.quote_date)
    raw = options_nb.daily_options_features(
        starts, chain.quote_date, chain.expiration, chain.strike, chain.is_call, chain.iv, chain.delta,
        chain.gamma, chain.theta, chain.vega, chain.underlying_price, chain.volume, chain.open_interest)
    dates = pd.DatetimeIndex(chain.quote_date[starts[:-1]].astype("datetime64[D]"), name="date")
    return pd.DataFrame(raw, index=dates, columns=list(options_nb.RAW_COLUMNS))


def missing_chain_columns(chain: ChainArrays) -> list[str]:
    """Chain columns with no valid value at all (e.g. a vendor without greeks)."""
    floats = {c: getattr(chain, c) for c in ("iv", "delta", "gamma", "theta", "vega")}
    missing = [c for c, v in floats.items() if len(v) and np.isnan(v).all()]
    missing += [c for c in ("volume", "open_interest") if len(chain) and (getattr(chain, c) < 0).all()]
    return missing


def options_features(raw: pd.DataFrame) -> pd.DataFrame:
    """All options features from the raw daily rows (causal rolling windows over the rows)."""
    f = pd.DataFrame(index=raw.index)
    spot = raw["spot"]
    # volume and open interest
    for c in ("call_oi", "put_oi", "call_volume", "put_volume"):
        f[c] = raw[c]
    f["total_oi"] = raw["call_oi"] + raw["put_oi"]
    f["total_volume"] = raw["call_volume"] + raw["put_volume"]
    f["oi_change_pct"] = ratio(f["total_oi"] - f["total_oi"].shift(1), f["total_oi"].shift(1))
    f["volume_zscore"] = rolling_zscore(f["total_volume"], VOLUME_WINDOW)
    # put-call ratios
    f["pcr_oi"] = ratio(raw["put_oi"], raw["call_oi"])
    f["pcr_volume"] = ratio(raw["put_volume"], raw["call_volume"])
    f["pcr_zscore"] = rolling_zscore(f["pcr_oi"], PCR_WINDOW)
    f["pcr_extreme_bullish"] = flag(f["pcr_oi"] < 0.7, f["pcr_oi"])
    f["pcr_extreme_bearish"] = flag(f["pcr_oi"] > 1.0, f["pcr_oi"])
    f["pcr_change"] = f["pcr_oi"].diff()
    # gamma exposure
    f["max_gamma_strike"] = raw["max_gamma_strike"]
    f["max_gamma_distance_pct"] = (raw["max_gamma_strike"] - spot) / spot
    f["gex_total_bn"] = raw["gex_total"] / 1e9
    f["gamma_sign"] = np.sign(raw["gex_total"])
    f["gamma_concentration"] = raw["gamma_concentration"]
    f["gamma_flip_strike"] = raw["gamma_flip_strike"]
    f["gamma_flip_distance_pct"] = (raw["gamma_flip_strike"] - spot) / spot
    # implied volatility (30-day interpolated)
    f["atm_call_iv"] = raw["atm_call_iv_30d"]
    f["atm_put_iv"] = raw["atm_put_iv_30d"]
    f["iv_skew"] = raw["put25_iv_30d"] - raw["call25_iv_30d"]
    f["put_call_iv_ratio"] = ratio(raw["atm_put_iv_30d"], raw["atm_call_iv_30d"])
    f["iv_percentile"] = rolling_percentile(raw["atm_iv_30d"])
    f["iv_rank"] = rolling_rank(raw["atm_iv_30d"])
    f["iv_change_pct"] = ratio(raw["atm_iv_30d"] - raw["atm_iv_30d"].shift(1), raw["atm_iv_30d"].shift(1))
    # net greeks per contract of open interest
    for greek in ("delta", "gamma", "vega", "theta"):
        f[f"net_{greek}"] = raw[f"net_{greek}"]
    f["net_delta_abs"] = f["net_delta"].abs()
    # term structure (nearest two expirations with DTE >= 1)
    f["front_month_oi"] = raw["front_month_oi"]
    f["next_month_oi"] = raw["next_month_oi"]
    f["roll_ratio"] = ratio(raw["front_month_oi"], raw["next_month_oi"])
    f["term_curve_slope"] = raw["atm_iv_next"] - raw["atm_iv_front"]
    # composite signals (seed 004 §3.8 rules)
    ret5 = spot.pct_change(5, fill_method=None)
    oi_chg = f["oi_change_pct"]
    trend = np.select([(oi_chg > 0.05) & (ret5 > 0.02), (oi_chg > 0.05) & (ret5 < -0.02),
                       (oi_chg < -0.05) & (ret5 > 0.02)], [1.0, -1.0, -0.5], 0.0)
    f["trend_signal"] = pd.Series(trend, index=f.index).where(oi_chg.notna() & ret5.notna())
    z = f["pcr_zscore"]
    f["sentiment_signal"] = pd.Series(np.select([z < -2, z > 2], [-1.0, 1.0], 0.0), index=f.index).where(z.notna())
    f["gamma_signal"] = flag(f["max_gamma_distance_pct"].abs() < GAMMA_ZONE_PCT, f["max_gamma_distance_pct"])
    # surface points
    f["chain_spot"] = spot
    for c in SURFACE_FEATURES[1:]:
        f[c] = raw[c]
    return f[list(ALL_OPTIONS_FEATURES)].copy()
