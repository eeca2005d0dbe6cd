"""Trailing-window statistics shared by the feature families (all causal: the value at row t
uses rows <= t only; windows count rows, i.e. trading days)."""
from __future__ import annotations

import numpy as np
import pandas as pd

YEAR_WINDOW = 252
MIN_HISTORY = 20  # rows before ranks and percentiles are defined (expanding until the window fills)


def rolling_rank(x: pd.Series, window: int = YEAR_WINDOW, min_periods: int = MIN_HISTORY) -> pd.Series:
    """IV-rank style position in the trailing range: (x - min) / (max - min); 0.5 for a flat range."""
    roll = x.rolling(window, min_periods=min_periods)
    lo, hi = roll.min(), roll.max()
    rank = (x - lo) / (hi - lo)
    return rank.where(hi > lo, np.where(hi.notna() & x.notna(), 0.5, np.nan))


def rolling_percentile(x: pd.Series, window: int = YEAR_WINDOW, min_periods: int = MIN_HISTORY) -> pd.Series:
    """Percentile rank of today's value in the trailing window (today included), as a share in
    (0, 1]: ties share their average rank, as ``scipy.stats.percentileofscore(kind="rank") / 100``
    (seed 004's definition), so a flat series sits near 0.5 rather than at 1."""
    pct = x.rolling(window, min_periods=min_periods).rank(method="average", pct=True)
    return pct.where(x.notna())


def rolling_zscore(x: pd.Series, window: int, min_periods: int = MIN_HISTORY) -> pd.Series:
    """(x - trailing mean) / trailing standard deviation (today included); NaN when flat."""
    roll = x.rolling(window, min_periods=min_periods)
    std = roll.std()
    return ((x - roll.mean()) / std).where(std > 0)


def ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    """num / den, NaN where den is not positive."""
    return (num / den).where(den > 0)


def flag(condition: pd.Series, *inputs: pd.Series) -> pd.Series:
    """1.0 / 0.0 of a condition, NaN where any input is NaN."""
    valid = np.logical_and.reduce([s.notna().to_numpy() for s in inputs])
    return pd.Series(np.where(valid, condition.astype(float), np.nan), index=condition.index)
