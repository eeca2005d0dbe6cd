"""Technical (25) and volatility (20) features of seed 001 §3 from daily bars and the VIX index.

All windows count trading days (rows) and are trailing (value at t uses rows <= t). Moving
averages and HVs need a full window; the 52-week range and VIX rank / percentile are expanding
until 252 rows are available (at least 20). Returns are simple, HVs use log returns
(sample standard deviation x sqrt(252)). RSI uses Wilder's smoothing; EMAs are recursive
(``adjust=False``).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from models.features.rolling import MIN_HISTORY, YEAR_WINDOW, flag, ratio, rolling_percentile, rolling_rank, rolling_zscore

ANNUAL = 252
GARCH_REFIT_EVERY = 63  # trading days between GARCH(1,1) refits (expanding window)
GARCH_MIN_OBS = 250

TECHNICAL_FEATURES = (
    "rsi_14", "rsi_28", "macd", "macd_signal", "macd_histogram", "bb_upper", "bb_lower", "bb_width",
    "bb_position", "sma_20", "sma_50", "sma_200", "ema_12", "ema_26", "price_vs_sma20", "price_vs_sma50",
    "sma_cross_20_50", "returns_1d", "returns_5d", "returns_20d", "returns_60d", "high_52w", "low_52w",
    "dist_from_high", "dist_from_low",
)
HV_FEATURES = ("hv_5", "hv_10", "hv_20", "hv_60", "hv_120", "hv_ratio_5_20", "hv_ratio_20_60",
               "garch_forecast", "parkinson_hv")
VIX_FEATURES = ("vix", "vix_sma_10", "vix_sma_20", "vix_rank", "vix_percentile", "hv_iv_ratio",
                "vix_change_1d", "vix_change_5d", "vix_zscore", "vol_regime", "vol_trend")
VOLATILITY_FEATURES = HV_FEATURES + VIX_FEATURES
VOL_REGIME_EDGES = (15.0, 20.0, 30.0)  # vol_regime: 0 calm < 15 <= 1 normal < 20 <= 2 elevated < 30 <= 3 crisis


def rsi(close: pd.Series, n: int) -> pd.Series:
    delta = close.diff()
    gain = delta.clip(lower=0).ewm(alpha=1.0 / n, adjust=False, min_periods=n).mean()
    loss = (-delta.clip(upper=0)).ewm(alpha=1.0 / n, adjust=False, min_periods=n).mean()
    return 100.0 - 100.0 / (1.0 + gain / loss)


def ema(x: pd.Series, span: int) -> pd.Series:
    return x.ewm(span=span, adjust=False, min_periods=span).mean()


def hv(log_returns: pd.Series, n: int) -> pd.Series:
    return log_returns.rolling(n, min_periods=n).std() * math.sqrt(ANNUAL)


def technical_features(bars: pd.DataFrame) -> pd.DataFrame:
    close = bars["close"]
    f = pd.DataFrame(index=bars.index)
    f["rsi_14"], f["rsi_28"] = rsi(close, 14), rsi(close, 28)
    f["ema_12"], f["ema_26"] = ema(close, 12), ema(close, 26)
    f["macd"] = f["ema_12"] - f["ema_26"]
    f["macd_signal"] = ema(f["macd"], 9)
    f["macd_histogram"] = f["macd"] - f["macd_signal"]
    for n in (20, 50, 200):
        f[f"sma_{n}"] = close.rolling(n, min_periods=n).mean()
    std20 = close.rolling(20, min_periods=20).std()
    f["bb_upper"], f["bb_lower"] = f["sma_20"] + 2 * std20, f["sma_20"] - 2 * std20
    f["bb_width"] = (f["bb_upper"] - f["bb_lower"]) / f["sma_20"]
    f["bb_position"] = ratio(close - f["bb_lower"], f["bb_upper"] - f["bb_lower"])
    f["price_vs_sma20"] = (close - f["sma_20"]) / f["sma_20"]
    f["price_vs_sma50"] = (close - f["sma_50"]) / f["sma_50"]
    f["sma_cross_20_50"] = flag(f["sma_20"] > f["sma_50"], f["sma_20"], f["sma_50"])
    for n in (1, 5, 20, 60):
        f[f"returns_{n}d"] = close.pct_change(n, fill_method=None)
    high = bars["high"].fillna(close)
    low = bars["low"].fillna(close)
    f["high_52w"] = high.rolling(YEAR_WINDOW, min_periods=MIN_HISTORY).max()
    f["low_52w"] = low.rolling(YEAR_WINDOW, min_periods=MIN_HISTORY).min()
    f["dist_from_high"] = (f["high_52w"] - close) / f["high_52w"]
    f["dist_from_low"] = (close - f["low_52w"]) / f["low_52w"]
    return f[list(TECHNICAL_FEATURES)].copy()


def garch_forecast(log_returns: pd.Series) -> pd.Series:
    """Annualised one-day-ahead GARCH(1,1) volatility, refit every GARCH_REFIT_EVERY rows on all
    returns so far (parameters fitted with the ``arch`` package on data <= the refit day; between
    refits the variance recursion runs on with the last parameters)."""
    from arch import arch_model
    from threadpoolctl import threadpool_limits

    r = log_returns.to_numpy() * 100.0  # percent returns keep the optimiser well scaled
    out = np.full(len(r), np.nan)
    valid = np.flatnonzero(~np.isnan(r))
    if len(valid) < GARCH_MIN_OBS:
        return pd.Series(out, index=log_returns.index)
    first = valid[0]
    params = None
    var = np.nan
    for t in range(first, len(r)):
        seen = t - first + 1
        if seen >= GARCH_MIN_OBS and (seen - GARCH_MIN_OBS) % GARCH_REFIT_EVERY == 0:
            sample = r[first:t + 1]
            model = arch_model(sample[~np.isnan(sample)], mean="Constant", vol="GARCH", p=1, q=1, rescale=False)
            with threadpool_limits(1):  # small fits; BLAS threads only contend
                # the previous fit is a good start: refits on a longer window move little
                res = model.fit(disp="off", starting_values=None if params is None else params.to_numpy())
            params = res.params
            var = float(res.conditional_volatility[-1] ** 2)
            resid = sample[~np.isnan(sample)][-1] - params["mu"]
        elif params is not None and not np.isnan(r[t]):
            var = params["omega"] + params["alpha[1]"] * resid ** 2 + params["beta[1]"] * var
            resid = r[t] - params["mu"]
        if params is not None:
            forecast = params["omega"] + params["alpha[1]"] * resid ** 2 + params["beta[1]"] * var
            out[t] = math.sqrt(forecast * ANNUAL) / 100.0
    return pd.Series(out, index=log_returns.index)


def hv_features(bars: pd.DataFrame) -> pd.DataFrame:
    close = bars["close"]
    lr = np.log(close).diff()
    f = pd.DataFrame(index=bars.index)
    for n in (5, 10, 20, 60, 120):
        f[f"hv_{n}"] = hv(lr, n)
    f["hv_ratio_5_20"] = ratio(f["hv_5"], f["hv_20"])
    f["hv_ratio_20_60"] = ratio(f["hv_20"], f["hv_60"])
    f["garch_forecast"] = garch_forecast(lr)
    hl2 = np.log(bars["high"] / bars["low"]) ** 2
    f["parkinson_hv"] = np.sqrt(hl2.rolling(20, min_periods=20).mean() / (4 * math.log(2)) * ANNUAL)
    return f[list(HV_FEATURES)].copy()


def vix_features(vix: pd.Series, hv_20: pd.Series) -> pd.DataFrame:
    """VIX features on the VIX's own calendar; ``hv_20`` is aligned to it for the HV/IV ratio."""
    f = pd.DataFrame(index=vix.index)
    f["vix"] = vix
    f["vix_sma_10"] = vix.rolling(10, min_periods=10).mean()
    f["vix_sma_20"] = vix.rolling(20, min_periods=20).mean()
    f["vix_rank"] = rolling_rank(vix)
    f["vix_percentile"] = rolling_percentile(vix)
    f["hv_iv_ratio"] = ratio(hv_20.reindex(vix.index), vix / 100.0)
    f["vix_change_1d"] = vix.diff(1)
    f["vix_change_5d"] = vix.diff(5)
    f["vix_zscore"] = rolling_zscore(vix, 60)
    f["vol_regime"] = pd.Series(np.digitize(vix.to_numpy(), VOL_REGIME_EDGES).astype(float),
                                index=vix.index).where(vix.notna())
    f["vol_trend"] = vix.rolling(5, min_periods=5).mean() - f["vix_sma_20"]
    return f[list(VIX_FEATURES)].copy()
