"""Assemble one underlying's feature table (rows: the chain's trading days) from the raw daily
options aggregates, the underlying's bars, the VIX index and any supplied regime tables.

Inputs may be missing: the features that need them come out NaN and the returned
``MissingInput`` list names them (the caller warns); nothing else changes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models import regimes
from models.features.bars import HV_FEATURES, TECHNICAL_FEATURES, VIX_FEATURES, hv_features, technical_features, vix_features
from models.features.edges import EDGE_FEATURES, edge_features
from models.features.options import ALL_OPTIONS_FEATURES, CHAIN_COLUMN_FEATURES, options_features
from models.features.rolling import flag

REGIME_FEATURES = ("regime_rule", "days_in_regime", "regime_change_1w", "vix_above_20", "vix_above_25",
                   "vix_below_15", "hv_iv_contraction", "hv_iv_expansion", "trend_regime")
CLASSIFIER_FEATURES = ("regime_machine", "regime_gmm")
RULE_DEPENDENT = ("regime_rule", "days_in_regime", "regime_change_1w", "hv_iv_contraction", "hv_iv_expansion")
BAR_DEPENDENT = TECHNICAL_FEATURES + HV_FEATURES + CLASSIFIER_FEATURES + RULE_DEPENDENT + (
    "hv_iv_ratio", "trend_regime", "vrp_ratio", "edge_vrp", "edge_vrp_side")
VIX_DEPENDENT = VIX_FEATURES + RULE_DEPENDENT + ("vix_above_20", "vix_above_25", "vix_below_15")


@dataclass(frozen=True)
class MissingInput:
    what: str  # e.g. "VIX index", "underlying bars", "chain column gamma"
    features: tuple[str, ...]

    def message(self, underlying: str) -> str:
        return f"{underlying}: no {self.what}; these features are NaN: {', '.join(self.features)}"


@dataclass
class MarketInputs:
    bars: pd.DataFrame | None = None  # date index; open, high, low, close, volume
    vix: pd.Series | None = None  # date index; close
    missing_chain_columns: tuple[str, ...] = ()
    # classifier name -> (codes by date, labels), e.g. "user", "synthetic"
    supplied_regimes: dict[str, tuple[pd.Series, tuple[str, ...]]] = field(default_factory=dict)


def days_in_regime(codes: pd.Series) -> pd.Series:
    """1 on the first day of a regime, counting up while it lasts; NaN where unknown."""
    change = codes.ne(codes.shift(1)).cumsum()
    return codes.groupby(change).cumcount().add(1.0).where(codes.notna())


def regime_family_features(f: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=f.index)
    code = regimes.rule_regime(f["vix"], f["vix_rank"], f["hv_iv_ratio"])
    out["regime_rule"] = code
    out["days_in_regime"] = days_in_regime(code)
    changed = code.ne(code.shift(1)) & code.shift(1).notna()
    out["regime_change_1w"] = flag(changed.astype(float).rolling(5, min_periods=1).max() > 0, code)
    vix = f["vix"]
    out["vix_above_20"] = flag(vix > 20, vix)
    out["vix_above_25"] = flag(vix > 25, vix)
    out["vix_below_15"] = flag(vix < 15, vix)
    out["hv_iv_contraction"] = flag(f["hv_iv_ratio"] < 0.6, f["hv_iv_ratio"])
    out["hv_iv_expansion"] = flag(f["hv_iv_ratio"] > 0.9, f["hv_iv_ratio"])
    # trend_regime: +1 bull (close > sma_50 > sma_200), -1 bear (close < sma_50 < sma_200), 0 otherwise
    above, stacked_up = f["price_vs_sma50"] > 0, f["sma_50"] > f["sma_200"]
    below, stacked_down = f["price_vs_sma50"] < 0, f["sma_50"] < f["sma_200"]
    trend = np.select([above & stacked_up, below & stacked_down], [1.0, -1.0], 0.0)
    out["trend_regime"] = pd.Series(trend, index=f.index).where(f["sma_200"].notna() & f["price_vs_sma50"].notna())
    return out[list(REGIME_FEATURES)]


def build_table(raw: pd.DataFrame, inputs: MarketInputs) -> tuple[pd.DataFrame, dict[str, tuple[str, ...]], list[MissingInput]]:
    """Feature table on raw's dates; returns (table, regime labels by classifier, missing inputs)."""
    missing: list[MissingInput] = []
    days = raw.index
    opt = options_features(raw)
    if inputs.missing_chain_columns:
        cols = sorted(inputs.missing_chain_columns)
        hit = tuple(dict.fromkeys(f for c in cols for f in CHAIN_COLUMN_FEATURES[c]))
        missing.append(MissingInput(f"chain column(s) {', '.join(cols)}", hit))

    if inputs.bars is not None and len(inputs.bars):
        bars = inputs.bars.sort_index()
        tech = technical_features(bars)
        hvf = hv_features(bars)
        hv_20_bars = hvf["hv_20"]
        bar_part = pd.concat([tech, hvf], axis=1).reindex(days)
        machine = regimes.machine_regime(hvf["hv_20"], tech["returns_20d"], tech["price_vs_sma50"])
        gmm = regimes.gmm_regime(hvf["hv_20"], tech["returns_20d"])
        classifiers = pd.DataFrame({"regime_machine": machine, "regime_gmm": gmm}).reindex(days)
    else:
        missing.append(MissingInput("underlying bars", BAR_DEPENDENT))
        bar_part = pd.DataFrame(np.nan, index=days, columns=list(TECHNICAL_FEATURES + HV_FEATURES))
        classifiers = pd.DataFrame(np.nan, index=days, columns=list(CLASSIFIER_FEATURES))
        hv_20_bars = pd.Series(dtype=float)

    if inputs.vix is not None and len(inputs.vix):
        vix_part = vix_features(inputs.vix.sort_index(), hv_20_bars).reindex(days)
    else:
        missing.append(MissingInput("VIX index", VIX_DEPENDENT))
        vix_part = pd.DataFrame(np.nan, index=days, columns=list(VIX_FEATURES))

    table = pd.concat([opt, bar_part, vix_part], axis=1)
    table = pd.concat([table, regime_family_features(table), classifiers, edge_features(table)], axis=1)
    labels = {name: regimes.FIXED_LABELS[name] for name in ("rule", "machine", "gmm")}
    supplied = {regimes.column(name): codes.reindex(days) for name, (codes, _) in inputs.supplied_regimes.items()}
    labels.update({name: names for name, (_, names) in inputs.supplied_regimes.items()})
    table = pd.concat([table, pd.DataFrame(supplied, index=days)], axis=1)
    return table.astype(float), labels, missing


FEATURE_COLUMNS = ALL_OPTIONS_FEATURES + TECHNICAL_FEATURES + HV_FEATURES + VIX_FEATURES + REGIME_FEATURES \
    + CLASSIFIER_FEATURES + EDGE_FEATURES
