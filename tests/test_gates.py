"""Entry masks from gates, and the edge detectors' strengths, on hand-made feature rows."""
import numpy as np
import pandas as pd
import pytest

from backtest.errors import UserError
from models.features.edges import edge_features
from models.gates import EdgeGate, FeatureGate, IVPercentileGate, RegimeGate, entry_mask, gate_to_dict, parse_gate

DAYS = pd.DatetimeIndex(pd.to_datetime(["2021-01-04", "2021-01-05", "2021-01-06", "2021-01-07"]), name="date")


@pytest.fixture
def table():
    t = pd.DataFrame({
        "regime_rule": [0, 1, np.nan, 4],
        "iv_percentile": [0.1, 0.5, 0.9, np.nan],
        "edge_vrp": [0.0, 0.6, 0.9, 0.4],
        "edge_vrp_side": [0, 1, -1, 1],
        "rsi_14": [25.0, 35.0, np.nan, 75.0],
    }, index=DAYS, dtype=float)
    t.attrs["regime_labels"] = {"rule": ["low_vol", "high_vol", "iv_expansion", "iv_contraction", "neutral"]}
    return t


def test_each_gate_kind(table):
    days = DAYS.to_numpy()
    assert entry_mask(table, days, []).tolist() == [True] * 4
    assert entry_mask(table, days, [{"kind": "regime", "classifier": "rule", "regimes": ["low_vol", "neutral"]}]).tolist() \
        == [True, False, False, True]
    assert entry_mask(table, days, [RegimeGate("rule", (1,))]).tolist() == [False, True, False, False]
    assert entry_mask(table, days, [IVPercentileGate(0.5, 0.9)]).tolist() == [False, True, True, False]
    assert entry_mask(table, days, [EdgeGate("vrp", 0.5)]).tolist() == [False, True, True, False]
    assert entry_mask(table, days, [EdgeGate("vrp", 0.5, side=1)]).tolist() == [False, True, False, False]
    assert entry_mask(table, days, [FeatureGate("rsi_14", "<", 30)]).tolist() == [True, False, False, False]
    assert entry_mask(table, days, [FeatureGate("rsi_14", "!=", 35)]).tolist() == [True, False, False, True]  # NaN fails


def test_gates_combine_with_and_and_accept_int_days(table):
    gates = [IVPercentileGate(0.0, 0.6), FeatureGate("rsi_14", ">=", 30)]
    epoch_days = DAYS.to_numpy().astype("datetime64[D]").astype(np.int32)
    assert entry_mask(table, epoch_days, gates).tolist() == [False, True, False, False]
    other = np.array(["2020-06-01", "2021-01-05"], dtype="datetime64[D]")  # a day absent from the table fails
    assert entry_mask(table, other, gates).tolist() == [False, True]


def test_gate_dicts_round_trip_and_bad_gates_are_user_errors(table):
    for gate in (RegimeGate("rule", ("low_vol",)), IVPercentileGate(0.2, 0.8), EdgeGate("skew", 0.3, -1),
                 FeatureGate("hv_20", ">", 0.3)):
        assert parse_gate(gate_to_dict(gate)) == gate
    for bad, msg in [({"kind": "moon"}, "kind 'moon' unknown"),
                     ({"kind": "feature", "feature": "x", "op": "~", "value": 1}, "op '~' unknown"),
                     ({"kind": "edge", "edge": "luck", "min_strength": 0.5}, "edge 'luck' unknown"),
                     ({"kind": "iv_percentile", "low": 0.9, "high": 0.1}, "0 <= low <= high <= 1"),
                     ({"kind": "regime", "classifier": "rule", "regime": ["x"]}, "unknown field")]:
        with pytest.raises(UserError, match=msg):
            parse_gate(bad)
    with pytest.raises(UserError, match="'calm' is not a regime of classifier 'rule'"):
        entry_mask(table, DAYS.to_numpy(), [RegimeGate("rule", ("calm",))])
    with pytest.raises(UserError, match="feature 'nope' is not in the feature table"):
        entry_mask(table, DAYS.to_numpy(), [FeatureGate("nope", "<", 1)])


def test_edge_strengths_by_hand():
    n = 80
    idx = pd.bdate_range("2021-01-01", periods=n)
    f = pd.DataFrame({
        "atm_iv_30d": np.r_[np.full(n - 3, 0.20), 0.26, 0.17, np.nan],
        "hv_20": np.full(n, 0.20),
        "atm_iv_90d": np.r_[0.22 + 0.002 * np.sin(np.arange(n - 1)), 0.30],
        "put25_iv_30d": np.full(n, 0.24), "call25_iv_30d": np.full(n, 0.18),
        "atm_iv_front": np.r_[np.full(n - 1, 0.2), 0.28], "atm_iv_next": np.full(n, 0.2),
        "max_gamma_distance_pct": np.r_[np.full(n - 1, 0.05), 0.015],
        "gamma_concentration": np.r_[np.full(n - 1, 0.1), 0.125], "gamma_sign": np.full(n, -1.0),
    }, index=idx)
    e = edge_features(f)
    assert e["edge_vrp"].iloc[n - 3] == pytest.approx(0.3 / 0.6) and e["edge_vrp_side"].iloc[n - 3] == 1
    assert e["edge_vrp"].iloc[n - 2] == pytest.approx(0.15 / 0.4) and e["edge_vrp_side"].iloc[n - 2] == -1
    assert e["edge_vrp"].iloc[0] == 0 and e["edge_vrp_side"].iloc[0] == 0 and np.isnan(e["edge_vrp"].iloc[-1])
    term = f.assign(atm_iv_30d=0.20, atm_iv_90d=np.r_[0.22 + 0.01 * np.sin(np.arange(n - 1)), 0.205])
    z = (0.005 - (term["atm_iv_90d"] - 0.2).mean()) / (term["atm_iv_90d"] - 0.2).std()  # expanding window
    strength = edge_features(term)["edge_term_structure"]
    assert 0 < strength.iloc[-1] < 1 and strength.iloc[-1] == pytest.approx((abs(z) - 1) / 2)
    assert edge_features(term)["edge_term_structure_side"].iloc[-1] == -1  # flatter than usual
    assert strength.iloc[:59].isna().all()
    assert np.isnan(e["edge_skew"].iloc[-1])  # flat skew history: z undefined, no edge claimed
    assert e["edge_event_vol"].iloc[-1] == pytest.approx(0.4 / 0.4) and e["edge_event_vol"].iloc[0] == 0
    assert e["edge_gamma_pressure"].iloc[-1] == pytest.approx((1 - 0.5) * 0.5)
    assert e["edge_gamma_pressure_side"].iloc[-1] == -1 and e["edge_gamma_pressure"].iloc[0] == 0
