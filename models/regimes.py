"""Market regimes per day, each as a classifier whose labels the search can gate on.

Classifiers (the feature column is ``regime_<name>``, holding the label's code 0..n-1 as float,
NaN where the inputs are not yet known):

- ``rule``: seed 001's rule table on VIX, VIX rank and HV/IV (first matching rule wins).
- ``machine``: seed 003's five-state machine on realised volatility and trend, with hysteresis
  (panic is entered at once and left only below a lower threshold; other states must hold for
  ``confirm_days`` days before the machine switches).
- ``gmm``: a Gaussian mixture on (log hv_20, returns_20d) fitted on expanding windows, refit every
  ``refit_every`` days; components are ordered by their mean volatility at every refit, so label
  0 is always the calmest and labels keep their meaning across refits. Day t is labelled by the
  model fitted at the latest refit <= t (causal).
- ``user``: a user-supplied ``regime_assignments.parquet`` (columns date, regime[, underlying]).
- ``synthetic``: the synthetic market's own per-day regime table (ground truth of ``osd data synth``,
  labels calm / stressed); a regime table in a dataset not made by the generator is ``dataset``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from backtest.errors import UserError

RULE_LABELS = ("low_vol", "high_vol", "iv_expansion", "iv_contraction", "neutral")
MACHINE_LABELS = ("LOW_VOL_GRIND", "HIGH_VOL_PANIC", "TREND_UP", "TREND_DOWN", "CHOP")
GMM_LABELS = ("calm", "normal", "stressed")
FIXED_LABELS = {"rule": RULE_LABELS, "machine": MACHINE_LABELS, "gmm": GMM_LABELS}
REGIME_ASSIGNMENTS = "regime_assignments.parquet"


def column(classifier: str) -> str:
    return f"regime_{classifier}"


# --------------------------------------------------------------------------- seed 001 rules


@dataclass(frozen=True)
class RuleThresholds:
    vix_low: float = 15.0
    vix_high: float = 25.0
    vix_rank_low: float = 0.3
    vix_rank_high: float = 0.8
    hv_iv_contraction: float = 0.6
    hv_iv_expansion: float = 0.9


def rule_regime(vix: pd.Series, vix_rank: pd.Series, hv_iv_ratio: pd.Series,
                th: RuleThresholds = RuleThresholds()) -> pd.Series:
    """Seed 001 §4.3, rules in order: low_vol, high_vol, iv_expansion, iv_contraction, neutral."""
    conditions = [
        (vix < th.vix_low) & (vix_rank < th.vix_rank_low),
        (vix > th.vix_high) | (vix_rank > th.vix_rank_high),
        (hv_iv_ratio > th.hv_iv_expansion) & (vix_rank > 0.5),
        (hv_iv_ratio < th.hv_iv_contraction) & (vix_rank < 0.5),
    ]
    codes = np.select(conditions, [0.0, 1.0, 2.0, 3.0], 4.0)
    known = vix.notna() & vix_rank.notna() & hv_iv_ratio.notna()
    return pd.Series(codes, index=vix.index).where(known)


# --------------------------------------------------------------------------- seed 003 machine


@dataclass(frozen=True)
class MachineConfig:
    panic_enter_hv: float = 0.30  # hv_20 (annualised) at which the market is in panic
    panic_exit_hv: float = 0.22  # ... and below which it leaves panic (hysteresis)
    grind_hv: float = 0.12  # hv_20 below this with no strong trend: low-volatility grind
    trend_return: float = 0.03  # |returns_20d| above this, on the same side of sma_50: trend
    confirm_days: int = 3  # a non-panic state must be the candidate this many days in a row


def machine_regime(hv_20: pd.Series, returns_20d: pd.Series, price_vs_sma50: pd.Series,
                   cfg: MachineConfig = MachineConfig()) -> pd.Series:
    """Seed 003's five market states as a state machine (codes index MACHINE_LABELS)."""
    hv, ret, dev = hv_20.to_numpy(), returns_20d.to_numpy(), price_vs_sma50.to_numpy()
    out = np.full(len(hv), np.nan)
    state, candidate, streak = -1, -1, 0
    panic = MACHINE_LABELS.index("HIGH_VOL_PANIC")
    for t in range(len(hv)):
        if np.isnan(hv[t]) or np.isnan(ret[t]) or np.isnan(dev[t]):
            continue
        if hv[t] >= cfg.panic_enter_hv or (state == panic and hv[t] >= cfg.panic_exit_hv):
            state, candidate, streak = panic, panic, 0
            out[t] = state
            continue
        if ret[t] > cfg.trend_return and dev[t] > 0:
            wanted = MACHINE_LABELS.index("TREND_UP")
        elif ret[t] < -cfg.trend_return and dev[t] < 0:
            wanted = MACHINE_LABELS.index("TREND_DOWN")
        elif hv[t] < cfg.grind_hv:
            wanted = MACHINE_LABELS.index("LOW_VOL_GRIND")
        else:
            wanted = MACHINE_LABELS.index("CHOP")
        streak = streak + 1 if wanted == candidate else 1
        candidate = wanted
        if state in (-1, panic) or streak >= cfg.confirm_days:
            state = wanted
        out[t] = state
    return pd.Series(out, index=hv_20.index)


# --------------------------------------------------------------------------- data-driven


@dataclass(frozen=True)
class GmmConfig:
    n_components: int = len(GMM_LABELS)
    refit_every: int = 63
    min_obs: int = 252
    seed: int = 0


def gmm_regime(hv_20: pd.Series, returns_20d: pd.Series, cfg: GmmConfig = GmmConfig()) -> pd.Series:
    """Gaussian-mixture regimes on expanding windows; label 0 = lowest mean volatility."""
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    x = np.column_stack([np.log(hv_20.to_numpy()), returns_20d.to_numpy()])
    valid = np.flatnonzero(np.isfinite(x).all(axis=1))
    out = np.full(len(x), np.nan)
    refits = valid[cfg.min_obs - 1::cfg.refit_every]
    for k, t in enumerate(refits):
        model = GaussianMixture(cfg.n_components, covariance_type="full", random_state=cfg.seed, n_init=2)
        with threadpool_limits(1):  # tiny 2-column fits: BLAS threads only contend (16x slower on 2 busy cores)
            model.fit(x[valid[valid <= t]])
        order = np.argsort(np.argsort(model.means_[:, 0]))  # component -> rank by volatility
        end = refits[k + 1] if k + 1 < len(refits) else len(x)
        rows = valid[(valid >= t) & (valid < end)]
        out[rows] = order[model.predict(x[rows])]
    return pd.Series(out, index=hv_20.index)


# --------------------------------------------------------------------------- supplied tables


def load_regime_assignments(path: str | os.PathLike, underlying: str | None = None) -> tuple[pd.Series, tuple[str, ...]]:
    """Read a (date, regime[, underlying]) Parquet file into (codes by date, labels)."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise UserError(f"{path}: cannot read regime assignments: {exc}") from None
    return regime_codes(table, str(path), underlying)


def regime_codes(table: pa.Table, source: str, underlying: str | None = None) -> tuple[pd.Series, tuple[str, ...]]:
    """Validate a (date, regime[, underlying]) table and encode it as (codes by date, labels).

    Labels are the distinct regime values sorted as text; rows of other underlyings are ignored
    when the table has an ``underlying`` column. ``source`` names the table in error messages.
    """
    missing = {"date", "regime"} - set(table.column_names)
    if missing:
        raise UserError(f"{source}: missing column(s) {', '.join(sorted(missing))}; expected date, regime[, underlying]")
    df = table.to_pandas()
    if "underlying" in df.columns and underlying is not None:
        df = df[df["underlying"].astype(str) == underlying]
    try:
        dates = pd.to_datetime(df["date"])
    except (ValueError, TypeError) as exc:
        raise UserError(f"{source}: column 'date' holds a value that is not a date: {exc}") from None
    bad = df["regime"].isna().to_numpy() | dates.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserError(f"{source}: row {row}: null date or regime, expected both set")
    dup = dates.duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise UserError(f"{source}: row {row}: date {dates.iloc[row].date()} assigned twice"
                        + (f" for {underlying}" if underlying else ""))
    regimes = df["regime"].astype(str).to_numpy()
    labels = tuple(sorted(set(regimes)))
    codes = np.searchsorted(np.array(labels), regimes).astype(float)
    return pd.Series(codes, index=pd.DatetimeIndex(dates, name="date")).sort_index(), labels
