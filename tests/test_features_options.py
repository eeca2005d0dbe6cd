"""Options-chain features: the numba kernel against hand computations on a tiny chain and
against an independent pandas implementation on a synthetic market."""
import dataclasses
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from backtest.schema import CHAIN_SCHEMA, conform
from backtest.store import chain_arrays, sort_chains
from models.features import options_nb
from models.features.options import daily_raw, missing_chain_columns, options_features
from models.features.reference import daily_raw_pandas
from models.features.rolling import rolling_percentile, rolling_rank
from tests.feature_market import chain_table, price_path

SPOT = 102.0


def tiny_chain(expiry_days=30, extra=None):
    """One day, strikes 90/100/110, hand-chosen greeks, IVs and open interest."""
    rows = {
        "strike": [90, 100, 110] * 2,
        "right": ["C"] * 3 + ["P"] * 3,
        "iv": [0.25, 0.20, 0.18, 0.26, 0.21, 0.19],
        "delta": [0.8, 0.5, 0.2, -0.15, -0.45, -0.8],
        "gamma": [0.01, 0.04, 0.01, 0.01, 0.04, 0.01],
        "theta": [-0.01, -0.02, -0.01, -0.01, -0.02, -0.01],
        "vega": [0.05, 0.10, 0.05, 0.05, 0.10, 0.05],
        "open_interest": [100, 200, 300, 600, 100, 0],
        "volume": [10, 20, 30, 40, 50, 60],
    }
    df = pd.DataFrame(rows)
    df["quote_date"] = pd.Timestamp("2024-03-01").date()
    df["expiration"] = (pd.Timestamp("2024-03-01") + pd.Timedelta(days=expiry_days)).date()
    if extra is not None:
        df = pd.concat([df, extra(df)], ignore_index=True)
    df["underlying"] = df["root"] = "XYZ"
    df["style"] = "A"
    df["bid"], df["ask"], df["underlying_price"] = 1.0, 1.1, SPOT
    return chain_arrays(sort_chains(conform(pa.Table.from_pandas(df, preserve_index=False), CHAIN_SCHEMA)))


def test_gamma_exposure_and_flip_by_hand():
    raw = daily_raw(tiny_chain()).iloc[0]
    scale = 100 * SPOT ** 2 * 0.01
    by_strike = {90: (0.01 * 100 - 0.01 * 600) * scale, 100: (0.04 * 200 - 0.04 * 100) * scale,
                 110: (0.01 * 300 - 0.0) * scale}
    assert raw["gex_total"] == pytest.approx(sum(by_strike.values()))
    assert raw["max_gamma_strike"] == 90
    assert raw["gamma_concentration"] == pytest.approx(5 / 12)
    # per-strike profile crosses zero between 90 (-5) and 100 (+4): 90 + 5/9 * 10
    assert raw["gamma_flip_strike"] == pytest.approx(90 + 50 / 9)
    f = options_features(daily_raw(tiny_chain())).iloc[0]
    assert f["gamma_flip_distance_pct"] == pytest.approx((90 + 50 / 9 - SPOT) / SPOT)
    assert f["max_gamma_distance_pct"] == pytest.approx((90 - SPOT) / SPOT)
    assert f["gamma_sign"] == 1.0 and f["gex_total_bn"] == pytest.approx(2 * scale / 1e9)


def test_volume_oi_pcr_and_net_greeks_by_hand():
    f = options_features(daily_raw(tiny_chain())).iloc[0]
    assert (f["call_oi"], f["put_oi"], f["total_oi"]) == (600, 700, 1300)
    assert (f["call_volume"], f["put_volume"], f["total_volume"]) == (60, 150, 210)
    assert f["pcr_oi"] == pytest.approx(700 / 600) and f["pcr_volume"] == pytest.approx(2.5)
    assert f["pcr_extreme_bearish"] == 1.0 and f["pcr_extreme_bullish"] == 0.0
    oi = np.array([100, 200, 300, 600, 100, 0])
    delta = np.array([0.8, 0.5, 0.2, -0.15, -0.45, -0.8])
    gamma = np.array([0.01, 0.04, 0.01, -0.01, -0.04, -0.01])  # puts counted negative
    assert f["net_delta"] == pytest.approx((delta * oi).sum() / 1300)
    assert f["net_gamma"] == pytest.approx((gamma * oi).sum() / 1300)
    assert f["net_vega"] == pytest.approx((np.array([0.05, 0.1, 0.05] * 2) * oi).sum() / 1300)
    assert f["net_theta"] == pytest.approx((np.array([-0.01, -0.02, -0.01] * 2) * oi).sum() / 1300)
    assert f["net_delta_abs"] == pytest.approx(abs(f["net_delta"]))
    assert f["front_month_oi"] == 1300 and np.isnan(f["next_month_oi"])


def test_atm_and_25_delta_iv_by_hand():
    f = options_features(daily_raw(tiny_chain())).iloc[0]
    # ATM: linear in strike at spot 102 between strikes 100 and 110
    assert f["atm_call_iv"] == pytest.approx(0.20 + 0.2 * (0.18 - 0.20))
    assert f["atm_put_iv"] == pytest.approx(0.21 + 0.2 * (0.19 - 0.21))
    # 25-delta: linear in |delta| (call 0.5 -> 0.2, put 0.15 -> 0.45)
    call25 = 0.20 + (0.18 - 0.20) * (0.25 - 0.5) / (0.2 - 0.5)
    put25 = 0.26 + (0.21 - 0.26) * (0.25 - 0.15) / (0.45 - 0.15)
    assert f["iv_skew"] == pytest.approx(put25 - call25)
    assert f["put_call_iv_ratio"] == pytest.approx(f["atm_put_iv"] / f["atm_call_iv"])


def test_thirty_day_iv_is_linear_in_total_variance():
    ts = np.array([20, 40, 90]) / 365
    ivs = np.array([0.30, 0.20, 0.22])
    t = 30 / 365
    w = 0.30 ** 2 * ts[0] + (0.20 ** 2 * ts[1] - 0.30 ** 2 * ts[0]) * 0.5
    assert options_nb.interp_total_variance(ts, ivs, 3, t) == pytest.approx(math.sqrt(w / t))
    assert options_nb.interp_total_variance(ts, ivs, 3, 10 / 365) == 0.30  # flat before the first
    assert options_nb.interp_total_variance(ts, ivs, 3, 200 / 365) == 0.22  # ... and after the last
    ivs_gap = np.array([0.30, np.nan, 0.22])  # a NaN expiration is skipped
    w = 0.30 ** 2 * ts[0] + (0.22 ** 2 * ts[2] - 0.30 ** 2 * ts[0]) * (t - ts[0]) / (ts[2] - ts[0])
    assert options_nb.interp_total_variance(ts, ivs_gap, 3, t) == pytest.approx(math.sqrt(w / t))


def test_expired_and_later_expirations_in_term_structure():
    def later(df):  # same strikes expiring 40 days out with IV + 0.05, twice the OI; and a 0-DTE row
        nxt = df.assign(expiration=(pd.Timestamp("2024-03-01") + pd.Timedelta(days=40)).date(),
                        iv=df["iv"] + 0.05, open_interest=df["open_interest"] * 2)
        zero = df.iloc[:1].assign(expiration=pd.Timestamp("2024-03-01").date(), open_interest=99999)
        return pd.concat([nxt, zero])
    f = options_features(daily_raw(tiny_chain(expiry_days=30, extra=later))).iloc[0]
    assert f["front_month_oi"] == 1300 and f["next_month_oi"] == 2600 and f["roll_ratio"] == 0.5
    front = 0.5 * (0.196 + 0.206)
    assert f["atm_iv_front"] == pytest.approx(front)
    assert f["term_curve_slope"] == pytest.approx(0.05)
    assert f["atm_iv_30d"] == pytest.approx(front)


def _synthetic_chain(n_days=30, seed=3):
    vols = np.linspace(0.15, 0.35, n_days)
    dates = pd.bdate_range("2022-01-03", periods=n_days).date
    table = chain_table(dates, price_path(n_days, vols, seed), vols, seed=seed)
    chain = chain_arrays(sort_chains(conform(table, CHAIN_SCHEMA)))
    rng = np.random.default_rng(seed)
    holes = {c: getattr(chain, c).copy() for c in ("iv", "gamma", "delta", "vega")}
    for arr in holes.values():  # vendor gaps: NaN greeks / IVs on 5% of rows each
        arr[rng.random(len(arr)) < 0.05] = np.nan
    oi = chain.open_interest.copy()
    oi[rng.random(len(oi)) < 0.05] = -1
    return dataclasses.replace(chain, open_interest=oi, **holes)


def test_kernel_matches_independent_pandas_implementation():
    chain = _synthetic_chain(n_days=12)
    pd.testing.assert_frame_equal(daily_raw(chain), daily_raw_pandas(chain), rtol=1e-9, atol=1e-12)


def test_missing_greeks_only_blank_dependent_aggregates():
    chain = _synthetic_chain(n_days=5)
    no_greeks = dataclasses.replace(chain, **{c: np.full(len(chain), np.nan) for c in ("delta", "gamma", "theta", "vega")})
    assert missing_chain_columns(no_greeks) == ["delta", "gamma", "theta", "vega"]
    full, bare = daily_raw(chain), daily_raw(no_greeks)
    blank = ["net_delta", "net_gamma", "net_vega", "net_theta", "gex_total",
             "max_gamma_strike", "gamma_concentration", "gamma_flip_strike", "call25_iv_30d", "put25_iv_30d"]
    assert bare[blank].isna().all().all()
    kept = [c for c in bare.columns if c not in blank]
    pd.testing.assert_frame_equal(bare[kept], full[kept])


def test_iv_rank_and_percentile_against_scipy_and_hand_loop():
    rng = np.random.default_rng(0)
    x = pd.Series(0.2 + 0.05 * rng.standard_normal(400))
    x[[30, 31, 200]] = np.nan
    pct, rank = rolling_percentile(x), rolling_rank(x)
    for t in (25, 100, 251, 252, 399):
        window = x.iloc[max(0, t - 251):t + 1].dropna().to_numpy()
        assert pct[t] == pytest.approx(stats.percentileofscore(window, x[t], kind="rank") / 100)
        assert rank[t] == pytest.approx((x[t] - window.min()) / (window.max() - window.min()))
    assert pct[:19].isna().all() and np.isnan(pct[200])
    flat = rolling_percentile(pd.Series(np.full(300, 16.0)))  # ties share their average rank (seed 004)
    assert flat[299] == pytest.approx(stats.percentileofscore(np.full(252, 16.0), 16.0, kind="rank") / 100)


def test_history_features_by_hand():
    raw = daily_raw(_synthetic_chain(n_days=70))
    f = options_features(raw)
    tot = raw["call_oi"] + raw["put_oi"]
    assert f["oi_change_pct"].iloc[10] == pytest.approx(tot.iloc[10] / tot.iloc[9] - 1)
    pcr = raw["put_oi"] / raw["call_oi"]
    win = pcr.iloc[5:65]
    assert f["pcr_zscore"].iloc[64] == pytest.approx((pcr.iloc[64] - win.mean()) / win.std())
    vol = raw["call_volume"] + raw["put_volume"]
    assert f["volume_zscore"].iloc[40] == pytest.approx((vol.iloc[40] - vol.iloc[21:41].mean()) / vol.iloc[21:41].std())
    ret5 = raw["spot"].iloc[40] / raw["spot"].iloc[35] - 1
    oi_chg = f["oi_change_pct"].iloc[40]
    expected = 1.0 if oi_chg > 0.05 and ret5 > 0.02 else -1.0 if oi_chg > 0.05 and ret5 < -0.02 else \
        -0.5 if oi_chg < -0.05 and ret5 > 0.02 else 0.0
    assert f["trend_signal"].iloc[40] == expected
    assert f["pcr_change"].iloc[30] == pytest.approx(pcr.iloc[30] - pcr.iloc[29])
    z = f["pcr_zscore"]
    assert (f["sentiment_signal"] == np.select([z < -2, z > 2], [-1.0, 1.0], 0.0)).iloc[20:].all()
    assert (f["gamma_signal"] == (f["max_gamma_distance_pct"].abs() < 0.03)).all()
    iv = raw["atm_iv_30d"]
    assert f["iv_change_pct"].iloc[30] == pytest.approx(iv.iloc[30] / iv.iloc[29] - 1)
    assert f["iv_rank"].iloc[60] == pytest.approx((iv.iloc[60] - iv.iloc[:61].min()) / (iv.iloc[:61].max() - iv.iloc[:61].min()))
    assert f["iv_percentile"].iloc[60] == pytest.approx((iv.iloc[:61] <= iv.iloc[60]).mean())
