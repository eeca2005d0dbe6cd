"""Technical, volatility and VIX features against hand loops / independent formulas."""
import math

import numpy as np
import pandas as pd
import pytest

from models.features.bars import garch_forecast, hv_features, technical_features, vix_features

N = 320


@pytest.fixture(scope="module")
def bars():
    rng = np.random.default_rng(7)
    close = 100 * np.exp(np.cumsum(0.012 * rng.standard_normal(N)))
    high = close * (1 + np.abs(rng.normal(0, 0.005, N)))
    low = close * (1 - np.abs(rng.normal(0, 0.005, N)))
    idx = pd.bdate_range("2020-01-01", periods=N, name="date")
    return pd.DataFrame({"open": close, "high": high, "low": low, "close": close, "volume": 1}, index=idx)


def ema_loop(x, span):
    a = 2 / (span + 1)
    out = np.full(len(x), np.nan)
    e = np.nan
    for i, v in enumerate(x):
        e = v if i == 0 else a * v + (1 - a) * e
        if i >= span - 1:
            out[i] = e
    return out


def rsi_loop(close, n):
    d = np.diff(close)
    gain, loss = np.maximum(d, 0), np.maximum(-d, 0)
    g, l = gain[0], loss[0]
    out = np.full(len(close), np.nan)
    for i in range(1, len(d)):
        g = g + (gain[i] - g) / n
        l = l + (loss[i] - l) / n
        if i >= n - 1:
            out[i + 1] = 100 - 100 / (1 + g / l)
    return out


def test_technical_features_by_hand(bars):
    f = technical_features(bars)
    c = bars["close"].to_numpy()
    t = 300
    assert f["rsi_14"].iloc[t] == pytest.approx(rsi_loop(c, 14)[t])
    assert f["rsi_28"].iloc[t] == pytest.approx(rsi_loop(c, 28)[t])
    e12, e26 = ema_loop(c, 12), ema_loop(c, 26)
    assert f["ema_12"].iloc[t] == pytest.approx(e12[t])
    assert f["macd"].iloc[t] == pytest.approx(e12[t] - e26[t])
    macd = e12 - e26
    sig = ema_loop(macd[25:], 9)
    assert f["macd_signal"].iloc[t] == pytest.approx(sig[t - 25])
    assert f["macd_histogram"].iloc[t] == pytest.approx(macd[t] - sig[t - 25])
    w = c[t - 19:t + 1]
    m, s = w.mean(), w.std(ddof=1)
    assert f["sma_20"].iloc[t] == pytest.approx(m)
    assert f["bb_upper"].iloc[t] == pytest.approx(m + 2 * s) and f["bb_lower"].iloc[t] == pytest.approx(m - 2 * s)
    assert f["bb_width"].iloc[t] == pytest.approx(4 * s / m)
    assert f["bb_position"].iloc[t] == pytest.approx((c[t] - m + 2 * s) / (4 * s))
    assert f["sma_200"].iloc[t] == pytest.approx(c[t - 199:t + 1].mean())
    assert np.isnan(f["sma_200"].iloc[198]) and not np.isnan(f["sma_200"].iloc[199])
    sma50 = c[t - 49:t + 1].mean()
    assert f["price_vs_sma50"].iloc[t] == pytest.approx(c[t] / sma50 - 1)
    assert f["sma_cross_20_50"].iloc[t] == float(m > sma50)
    assert f["returns_60d"].iloc[t] == pytest.approx(c[t] / c[t - 60] - 1)
    hi = bars["high"].to_numpy()[t - 251:t + 1].max()
    lo = bars["low"].to_numpy()[t - 251:t + 1].min()
    assert f["high_52w"].iloc[t] == hi and f["low_52w"].iloc[t] == lo
    assert f["dist_from_high"].iloc[t] == pytest.approx((hi - c[t]) / hi)
    assert f["dist_from_low"].iloc[t] == pytest.approx((c[t] - lo) / lo)
    assert f["high_52w"].iloc[30] == bars["high"].to_numpy()[:31].max()  # expanding before a year


def test_volatility_features_by_hand(bars):
    f = hv_features(bars)
    lr = np.diff(np.log(bars["close"].to_numpy()))
    t = 300
    for n in (5, 20, 120):
        assert f[f"hv_{n}"].iloc[t] == pytest.approx(lr[t - n:t].std(ddof=1) * math.sqrt(252))
    assert f["hv_ratio_5_20"].iloc[t] == pytest.approx(f["hv_5"].iloc[t] / f["hv_20"].iloc[t])
    hl = np.log(bars["high"] / bars["low"]).to_numpy()[t - 19:t + 1]
    assert f["parkinson_hv"].iloc[t] == pytest.approx(math.sqrt((hl ** 2).mean() / (4 * math.log(2)) * 252))


def test_garch_forecast_matches_arch_package(bars):
    from arch import arch_model

    lr = np.log(bars["close"]).diff()
    g = garch_forecast(lr)
    first_fit = 250  # the 250th return is row 250 (row 0 has none)
    assert g.iloc[:first_fit].isna().all()
    r = lr.to_numpy()[1:first_fit + 1] * 100
    res = arch_model(r, mean="Constant", vol="GARCH", p=1, q=1, rescale=False).fit(disp="off")
    expected = math.sqrt(res.forecast(horizon=1).variance.to_numpy()[-1, 0] * 252) / 100
    assert g.iloc[first_fit] == pytest.approx(expected, rel=1e-6)
    # between refits the recursion continues with the fitted parameters
    later = arch_model(lr.to_numpy()[1:first_fit + 41] * 100, mean="Constant", vol="GARCH", p=1, q=1,
                       rescale=False).fix(res.params)
    expected = math.sqrt(later.forecast(horizon=1).variance.to_numpy()[-1, 0] * 252) / 100
    assert g.iloc[first_fit + 40] == pytest.approx(expected, rel=1e-4)


def test_vix_features_by_hand(bars):
    rng = np.random.default_rng(3)
    vix = pd.Series(18 + 4 * rng.standard_normal(N), index=bars.index)
    hv20 = hv_features(bars)["hv_20"]
    f = vix_features(vix, hv20)
    t = 290
    v = vix.to_numpy()
    assert f["vix_sma_10"].iloc[t] == pytest.approx(v[t - 9:t + 1].mean())
    w = v[t - 251:t + 1]
    assert f["vix_rank"].iloc[t] == pytest.approx((v[t] - w.min()) / (w.max() - w.min()))
    assert f["vix_percentile"].iloc[t] == pytest.approx((w <= v[t]).mean())
    assert f["hv_iv_ratio"].iloc[t] == pytest.approx(hv20.iloc[t] / (v[t] / 100))
    assert f["vix_change_5d"].iloc[t] == pytest.approx(v[t] - v[t - 5])
    w60 = v[t - 59:t + 1]
    assert f["vix_zscore"].iloc[t] == pytest.approx((v[t] - w60.mean()) / w60.std(ddof=1))
    assert f["vol_trend"].iloc[t] == pytest.approx(v[t - 4:t + 1].mean() - v[t - 19:t + 1].mean())
    expected_regime = 0 if v[t] < 15 else 1 if v[t] < 20 else 2 if v[t] < 30 else 3
    assert f["vol_regime"].iloc[t] == expected_regime
