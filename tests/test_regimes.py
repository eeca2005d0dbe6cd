"""Regime classifiers on a constructed calm-then-crash market, and supplied regime tables."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from backtest.errors import UserError
from models import regimes
from models.features.bars import hv_features, technical_features, vix_features


@pytest.fixture(scope="module")
def calm_then_crash():
    """500 days of a quiet uptrend (10% vol, VIX easing 20 -> 11), then 40 days of a crash (70% vol,
    -200%/yr drift, VIX 30 -> 60)."""
    rng = np.random.default_rng(11)
    n_calm, n_crash = 500, 40
    vol = np.r_[np.full(n_calm, 0.10), np.full(n_crash, 0.70)]
    drift = np.r_[np.full(n_calm, 0.10), np.full(n_crash, -2.0)]
    r = drift / 252 + vol / np.sqrt(252) * rng.standard_normal(n_calm + n_crash)
    close = 100 * np.exp(np.cumsum(r))
    idx = pd.bdate_range("2015-01-01", periods=len(close), name="date")
    bars = pd.DataFrame({"open": close, "high": close * 1.002, "low": close * 0.998, "close": close, "volume": 1}, index=idx)
    vix = pd.Series(np.r_[np.linspace(20, 11, n_calm), np.linspace(30, 60, n_crash)] + rng.normal(0, 0.3, len(close)),
                    index=idx)
    tech, hv = technical_features(bars), hv_features(bars)
    return tech, hv, vix_features(vix, hv["hv_20"]), n_calm


def test_rule_classifier_calm_is_low_vol_crash_is_high_vol(calm_then_crash):
    tech, hv, vf, n_calm = calm_then_crash
    code = regimes.rule_regime(vf["vix"], vf["vix_rank"], vf["hv_iv_ratio"])
    labels = np.array(regimes.RULE_LABELS)
    calm = labels[code.iloc[350:n_calm].astype(int)]
    assert (calm == "low_vol").mean() > 0.9
    assert (labels[code.iloc[n_calm + 1:].astype(int)] == "high_vol").all()
    assert code.iloc[:19].isna().all()


def test_rule_table_order_by_hand():
    s = lambda *v: pd.Series(v, dtype=float)
    code = regimes.rule_regime(s(14, 26, 20, 20, 20, 20, np.nan), s(0.2, 0.1, 0.6, 0.4, 0.4, 0.6, 0.5),
                               s(0.5, 1.0, 1.0, 0.5, 0.8, 0.8, 0.8))
    assert code.iloc[:6].tolist() == [0, 1, 2, 3, 4, 4] and np.isnan(code.iloc[6])


def test_state_machine_calm_grind_then_panic(calm_then_crash):
    tech, hv, _, n_calm = calm_then_crash
    state = regimes.machine_regime(hv["hv_20"], tech["returns_20d"], tech["price_vs_sma50"])
    labels = np.array(regimes.MACHINE_LABELS)
    calm = labels[state.iloc[100:n_calm].astype(int)]
    assert set(calm) <= {"LOW_VOL_GRIND", "TREND_UP", "CHOP"} and (calm == "LOW_VOL_GRIND").mean() > 0.5
    assert (labels[state.iloc[n_calm + 15:].astype(int)] == "HIGH_VOL_PANIC").all()


def test_state_machine_hysteresis():
    hv = pd.Series([0.15, 0.31, 0.25, 0.23, 0.21, 0.15, 0.15, 0.15, 0.15])
    ret = pd.Series([0.0, 0.0, 0.0, 0.0, 0.0, 0.05, 0.05, 0.05, 0.0])
    dev = pd.Series([0.0, 0.0, 0.0, 0.0, 0.0, 0.02, 0.02, 0.02, 0.0])
    labels = [regimes.MACHINE_LABELS[int(c)] for c in regimes.machine_regime(hv, ret, dev)]
    assert labels == ["CHOP", "HIGH_VOL_PANIC", "HIGH_VOL_PANIC", "HIGH_VOL_PANIC",  # stays above exit 0.22
                      "CHOP",  # leaving panic switches at once
                      "CHOP", "CHOP", "TREND_UP",  # a trend must hold 3 days before it is confirmed
                      "TREND_UP"]  # one CHOP day is not confirmed
    assert regimes.machine_regime(hv, ret, dev, regimes.MachineConfig(confirm_days=1)).iloc[8] == \
        regimes.MACHINE_LABELS.index("CHOP")


def test_gmm_labels_are_aligned_across_refits_and_causal():
    """calm 200 / normal 100 / stress 60 / calm 200 / crash 40 days of (hv_20, returns_20d)."""
    rng = np.random.default_rng(5)
    segments = [(200, 0.10, 0.01), (100, 0.20, 0.0), (60, 0.45, -0.08), (200, 0.10, 0.01), (40, 0.50, -0.10)]
    hv = np.concatenate([lvl * np.exp(0.1 * rng.standard_normal(n)) for n, lvl, _ in segments])
    ret = np.concatenate([mu + 0.01 * rng.standard_normal(n) for n, _, mu in segments])
    idx = pd.bdate_range("2015-01-01", periods=len(hv))
    hv, ret = pd.Series(hv, index=idx), pd.Series(ret, index=idx)
    cfg = regimes.GmmConfig(refit_every=63, min_obs=252)
    code = regimes.gmm_regime(hv, ret, cfg)
    calm, stressed = regimes.GMM_LABELS.index("calm"), regimes.GMM_LABELS.index("stressed")
    assert code.iloc[:251].isna().all() and code.iloc[251:].notna().all()
    assert (code.iloc[300:360] == stressed).mean() > 0.9  # stress before any refit had seen it
    assert (code.iloc[380:560] == calm).mean() > 0.9  # calm after refits that had seen stress
    assert (code.iloc[560:] == stressed).all()
    # causal: recomputing on data truncated at day T gives the same labels up to T
    T = 570
    pd.testing.assert_series_equal(regimes.gmm_regime(hv.iloc[:T + 1], ret.iloc[:T + 1], cfg), code.iloc[:T + 1])


def test_regime_assignments_loaded_and_validated(tmp_path):
    path = tmp_path / "regime_assignments.parquet"
    pq.write_table(pa.table({"date": pd.to_datetime(["2021-01-05", "2021-01-04", "2021-01-06"]).date,
                             "regime": ["calm", "calm", "stressed"]}), path)
    codes, labels = regimes.load_regime_assignments(path)
    assert labels == ("calm", "stressed") and codes.tolist() == [0.0, 0.0, 1.0]
    assert codes.index[0] == pd.Timestamp("2021-01-04")
    pq.write_table(pa.table({"date": pd.to_datetime(["2021-01-04", "2021-01-04"]).date, "regime": ["a", "b"]}), path)
    with pytest.raises(UserError, match="row 1: date 2021-01-04 assigned twice"):
        regimes.load_regime_assignments(path)
    pq.write_table(pa.table({"day": [1], "regime": ["a"]}), path)
    with pytest.raises(UserError, match="missing column"):
        regimes.load_regime_assignments(path)
    pq.write_table(pa.table({"date": pd.to_datetime(["2021-01-04", "2021-01-05"]).date, "regime": ["a", None]}), path)
    with pytest.raises(UserError, match="row 1: null"):
        regimes.load_regime_assignments(path)
    pq.write_table(pa.table({"date": pd.to_datetime(["2021-01-04", "2021-01-04"]).date, "regime": ["a", "b"],
                             "underlying": ["SPY", "QQQ"]}), path)
    codes, labels = regimes.load_regime_assignments(path, "QQQ")
    assert labels == ("b",) and len(codes) == 1


def test_regime_family_features_by_hand():
    from models.features.table import days_in_regime, regime_family_features

    codes = pd.Series([np.nan, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0], dtype=float)
    assert days_in_regime(codes).tolist()[1:] == [1, 2, 1, 2, 3, 4, 5, 6, 7, 1] and np.isnan(days_in_regime(codes)[0])
    n = 4
    f = pd.DataFrame({
        "vix": [14.0, 22.0, 26.0, np.nan], "vix_rank": [0.1, 0.6, 0.9, 0.5], "hv_iv_ratio": [0.5, 1.0, 0.7, 0.7],
        "price_vs_sma50": [0.02, -0.01, -0.03, 0.01], "sma_50": [101.0, 99.0, 98.0, 100.0],
        "sma_200": [100.0, 100.0, 100.0, np.nan]}, index=pd.bdate_range("2021-01-04", periods=n))
    out = regime_family_features(f)
    assert out["regime_rule"].tolist()[:3] == [0, 2, 1] and np.isnan(out["regime_rule"].iloc[3])
    assert out["regime_change_1w"].tolist()[:3] == [0, 1, 1]
    assert out["vix_above_20"].tolist()[:3] == [0, 1, 1] and out["vix_above_25"].tolist()[:3] == [0, 0, 1]
    assert out["vix_below_15"].tolist()[:3] == [1, 0, 0] and np.isnan(out["vix_below_15"].iloc[3])
    assert out["hv_iv_contraction"].tolist() == [1, 0, 0, 0] and out["hv_iv_expansion"].tolist() == [0, 1, 0, 0]
    assert out["trend_regime"].tolist()[:3] == [1, -1, -1] and np.isnan(out["trend_regime"].iloc[3])
