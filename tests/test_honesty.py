import math

import numpy as np
import pytest

from discovery import honesty as h

# REFERENCES.md, "What passing takes": annualised Sharpe needed for DSR >= 0.95 (V = 1/T).
POWER_TABLE = {
    2: {100: 2.96, 1000: 3.48, 5000: 3.79, 20000: 4.03},
    5: {100: 1.87, 1000: 2.20, 5000: 2.39, 20000: 2.54},
    10: {100: 1.32, 1000: 1.55, 5000: 1.69, 20000: 1.80},
}


def test_dsr_test_vector_from_the_paper():
    # Bailey & López de Prado (2014) example: SR 2.5/yr, T=1250, N=100, V=0.5/yr, g3=-3, g4=10.
    variance = 0.5 / 250
    assert h.expected_max_sharpe(100, variance) == pytest.approx(0.1132, abs=5e-5)
    dsr = h.deflated_sharpe_ratio(2.5 / math.sqrt(250), 1250, 100, variance, skew=-3, kurtosis=10)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


@pytest.mark.parametrize("years", sorted(POWER_TABLE))
def test_power_table(years):
    n_obs = years * h.PERIODS_PER_YEAR
    for n_trials, expected in POWER_TABLE[years].items():
        needed = h.annualise(h.required_sharpe(n_obs, n_trials))
        assert needed == pytest.approx(expected, abs=0.006), (years, n_trials)
        # and a structure exactly at that Sharpe sits at the threshold
        sr = h.required_sharpe(n_obs, n_trials)
        assert h.deflated_sharpe_ratio(sr, n_obs, n_trials, 1 / n_obs) == pytest.approx(0.95, abs=1e-6)


def test_best_of_noise_configurations():
    # 5 years of daily data (T=1250): best of 1,000 zero-skill configs ~1.46/yr, 10,000 ~1.73/yr.
    assert h.annualise(h.expected_max_sharpe(1000, 1 / 1250)) == pytest.approx(1.46, abs=0.01)
    assert h.annualise(h.expected_max_sharpe(10000, 1 / 1250)) == pytest.approx(1.73, abs=0.01)


def test_expected_max_matches_simulation():
    rng = np.random.default_rng(0)
    n_obs, n_trials = 500, 200
    maxima = [h.sharpe(rng.standard_normal((n_obs, n_trials))).max() for _ in range(40)]
    assert np.mean(maxima) == pytest.approx(h.expected_max_sharpe(n_trials, 1 / n_obs), rel=0.06)


def test_psr_and_min_track_record_are_consistent():
    sr, bench = 0.1, 0.02
    t = h.min_track_record_length(sr, bench, skew=-1, kurtosis=6, confidence=0.95)
    assert h.probabilistic_sharpe_ratio(sr, math.ceil(t), bench, -1, 6) >= 0.95
    assert h.probabilistic_sharpe_ratio(sr, math.floor(t) - 1, bench, -1, 6) < 0.95
    assert h.min_track_record_length(0.01, 0.02) == math.inf


def test_min_observations_and_max_trials_for_pass():
    n_obs, variance = 1250, 1 / 1250
    sr = h.required_sharpe(n_obs, 1000)  # passes at exactly 1,000 trials
    assert h.max_trials_for_pass(sr, n_obs, variance) in range(990, 1011)
    needed = h.min_observations_for_pass(sr, 1000, variance)
    assert needed == pytest.approx(n_obs, rel=0.01)
    assert h.max_trials_for_pass(0.0, n_obs, variance) == 0


def test_min_backtest_length_years():
    # BBLZ (2014): with N=1000 trials, ~5 years bound an annualised Sharpe of ~1.46 (unit variance/yr).
    years = h.min_backtest_length_years(1000, 1.0)
    assert h.expected_max_sharpe(1000, 1 / years) == pytest.approx(1.0)


def test_cscv_split_counts():
    assert len(h.cscv_splits(8)) == 70
    assert len(h.cscv_splits(16)) == 12870
    with pytest.raises(ValueError):
        h.cscv_splits(7)


def test_pbo_on_pure_noise_is_about_one_half():
    rng = np.random.default_rng(1)
    pbos = [h.probability_of_backtest_overfitting(rng.standard_normal((1000, 50)), 8).pbo for _ in range(12)]
    assert np.mean(pbos) == pytest.approx(0.5, abs=0.12)


def test_pbo_with_one_genuinely_better_column_is_near_zero():
    rng = np.random.default_rng(2)
    m = rng.standard_normal((1000, 50))
    m[:, 7] += 0.3  # a daily Sharpe of 0.3: clearly better in every half
    result = h.probability_of_backtest_overfitting(m, 16)
    assert result.n_splits == 12870
    assert result.pbo < 0.02
    assert result.prob_oos_loss == 0.0


def test_pbo_rejects_bad_shapes():
    with pytest.raises(ValueError):
        h.probability_of_backtest_overfitting(np.zeros((100, 1)), 8)
    with pytest.raises(ValueError):
        h.probability_of_backtest_overfitting(np.zeros((10, 3)), 8)


def test_sharpe_decay():
    d = h.sharpe_decay(2.0, 0.5)
    assert d.difference == -1.5 and d.retained == 0.25
    assert math.isnan(h.sharpe_decay(-1.0, 0.5).retained)


def test_sharpe_handles_flat_series():
    assert h.sharpe(np.zeros(10)) == 0.0
    assert h.moments(np.zeros(10)) == (0.0, 3.0)
