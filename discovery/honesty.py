"""Honesty statistics: how likely is a reported Sharpe ratio a fluke of the search?

Pure numpy/scipy. Every Sharpe ratio here is *per period* (daily) unless a name says otherwise;
annualise with sqrt(PERIODS_PER_YEAR) only for display.

Sources:
- Bailey, D. H. & López de Prado, M. (2012). "The Sharpe Ratio Efficient Frontier."
  Journal of Risk 15(2). Probabilistic Sharpe ratio (PSR) and minimum track record length.
- Bailey, D. H. & López de Prado, M. (2014). "The Deflated Sharpe Ratio: Correcting for Selection
  Bias, Backtest Overfitting and Non-Normality." Journal of Portfolio Management 40(5).
  Expected maximum Sharpe ratio of N trials and the deflated Sharpe ratio (DSR).
- Bailey, D. H., Borwein, J. M., López de Prado, M. & Zhu, Q. J. (2014). "Pseudo-Mathematics and
  Financial Charlatanism." Notices of the AMS 61(5). Minimum backtest length (MinBTL).
- Bailey, D. H., Borwein, J. M., López de Prado, M. & Zhu, Q. J. (2015). "The Probability of
  Backtest Overfitting." Journal of Computational Finance 20(4). PBO by combinatorially
  symmetric cross-validation (CSCV).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

PERIODS_PER_YEAR = 252


def sharpe(returns: np.ndarray, axis: int = 0) -> np.ndarray:
    """Per-period Sharpe ratio (mean / sample std, ddof=1); 0 where the std is 0."""
    returns = np.asarray(returns, dtype=float)
    mean = returns.mean(axis=axis)
    std = returns.std(axis=axis, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(std > 0, mean / np.where(std > 0, std, 1.0), 0.0)
    return out if out.ndim else float(out)


def annualise(sr_per_period: float | np.ndarray) -> float | np.ndarray:
    return sr_per_period * math.sqrt(PERIODS_PER_YEAR)


def moments(returns: np.ndarray) -> tuple[float, float]:
    """Skewness g3 and non-excess kurtosis g4 (normal: 0, 3) of a return series."""
    returns = np.asarray(returns, dtype=float)
    if returns.size < 3 or returns.std() == 0:
        return 0.0, 3.0
    return float(stats.skew(returns)), float(stats.kurtosis(returns, fisher=False))


def _sr_std_factor(sr: float, skew: float, kurtosis: float) -> float:
    # Bailey & López de Prado (2012), eq. for the std of the estimated SR (times sqrt(T-1)).
    # Clamped at a tiny positive value: extreme skew/kurtosis can make the expression negative.
    return math.sqrt(max(1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr, 1e-12))


def probabilistic_sharpe_ratio(sr: float, n_obs: int, sr_benchmark: float = 0.0,
                               skew: float = 0.0, kurtosis: float = 3.0) -> float:
    """PSR(SR*) = Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1)/4 SR^2)).

    Bailey & López de Prado (2012): probability that the true Sharpe exceeds SR*, given an
    estimate over T observations with skewness g3 and (non-excess) kurtosis g4.
    """
    if n_obs < 2:
        return 0.5
    z = (sr - sr_benchmark) * math.sqrt(n_obs - 1) / _sr_std_factor(sr, skew, kurtosis)
    return float(stats.norm.cdf(z))


def expected_max_sharpe(n_trials: int, variance: float) -> float:
    """Expected maximum per-period Sharpe of N zero-skill trials whose Sharpe ratios have variance V.

    Bailey & López de Prado (2014), eq. (6) (false strategy theorem):
    SR0 = sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e))).
    """
    if n_trials <= 1 or variance <= 0:
        return 0.0
    g = np.euler_gamma
    z = (1 - g) * stats.norm.ppf(1 - 1 / n_trials) + g * stats.norm.ppf(1 - 1 / (n_trials * math.e))
    return float(math.sqrt(variance) * z)


def deflated_sharpe_ratio(sr: float, n_obs: int, n_trials: int, trials_sr_variance: float,
                          skew: float = 0.0, kurtosis: float = 3.0) -> float:
    """DSR = PSR(SR0), SR0 the expected max Sharpe of ``n_trials`` trials (Bailey & López de Prado 2014).

    ``n_trials`` is the number of distinct configurations evaluated in the whole run and
    ``trials_sr_variance`` the variance of all their per-period Sharpe ratios.
    """
    sr0 = expected_max_sharpe(n_trials, trials_sr_variance)
    return probabilistic_sharpe_ratio(sr, n_obs, sr0, skew, kurtosis)


def min_track_record_length(sr: float, sr_benchmark: float, skew: float = 0.0, kurtosis: float = 3.0,
                            confidence: float = 0.95) -> float:
    """Observations needed for PSR(SR*) >= confidence (Bailey & López de Prado 2012, MinTRL).

    MinTRL = 1 + (1 - g3 SR + (g4 - 1)/4 SR^2) (Phi^-1(confidence) / (SR - SR*))^2;
    infinite when SR <= SR*.
    """
    if sr <= sr_benchmark:
        return math.inf
    factor = _sr_std_factor(sr, skew, kurtosis) ** 2
    return 1.0 + factor * (stats.norm.ppf(confidence) / (sr - sr_benchmark)) ** 2


def min_backtest_length_years(n_trials: int, target_annual_sr: float) -> float:
    """Years of data so that the best of N zero-skill trials is not expected to reach target_annual_sr.

    Bailey, Borwein, López de Prado & Zhu (2014), MinBTL: with annualised Sharpe ratios of unit
    variance per year, E[max] ~ expected_max_sharpe(N, 1/years), hence
    MinBTL = (E[max_N] with V=1 / target)^2 years.
    """
    if target_annual_sr <= 0:
        return math.inf
    return (expected_max_sharpe(n_trials, 1.0) / target_annual_sr) ** 2


def max_trials_for_pass(sr: float, n_obs: int, trials_sr_variance: float, skew: float = 0.0,
                        kurtosis: float = 3.0, threshold: float = 0.95, cap: int = 10**9) -> int:
    """Largest number of trials N for which DSR(sr) would still reach ``threshold`` (0 if none)."""
    def passes(n: int) -> bool:
        return deflated_sharpe_ratio(sr, n_obs, n, trials_sr_variance, skew, kurtosis) >= threshold

    if not passes(1):
        return 0
    lo, hi = 1, 2
    while hi < cap and passes(hi):
        lo, hi = hi, hi * 2
    if hi >= cap and passes(cap):
        return cap
    while hi - lo > 1:  # DSR falls monotonically in N
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if passes(mid) else (lo, mid)
    return lo


def required_sharpe(n_obs: int, n_trials: int, trials_sr_variance: float | None = None, skew: float = 0.0,
                    kurtosis: float = 3.0, threshold: float = 0.95) -> float:
    """Per-period Sharpe a structure needs for DSR >= threshold (the REFERENCES.md power table).

    ``trials_sr_variance`` defaults to 1/T: trials whose Sharpe ratios differ only by noise.
    """
    variance = 1.0 / n_obs if trials_sr_variance is None else trials_sr_variance
    sr0 = expected_max_sharpe(n_trials, variance)

    def gap(sr: float) -> float:
        return probabilistic_sharpe_ratio(sr, n_obs, sr0, skew, kurtosis) - threshold

    from scipy.optimize import brentq
    return float(brentq(gap, sr0, sr0 + 10.0 / math.sqrt(n_obs) + 1.0))


def min_observations_for_pass(sr: float, n_trials: int, trials_sr_variance: float, skew: float = 0.0,
                              kurtosis: float = 3.0, threshold: float = 0.95) -> float:
    """Observations needed for DSR >= threshold if the Sharpe ratio and the trials' spread held.

    The expected maximum SR0 of the trials is held at its current value (the trials' Sharpe
    variance as measured); MinTRL against SR0 (Bailey & López de Prado 2012, 2014).
    """
    sr0 = expected_max_sharpe(n_trials, trials_sr_variance)
    return min_track_record_length(sr, sr0, skew, kurtosis, threshold)


# --- PBO by CSCV (Bailey, Borwein, López de Prado & Zhu 2015) ---------------------------------

def cscv_splits(n_blocks: int) -> list[tuple[int, ...]]:
    """All ways to choose S/2 of S blocks as the in-sample half: C(S, S/2) (8 -> 70, 16 -> 12,870)."""
    if n_blocks < 2 or n_blocks % 2:
        raise ValueError(f"CSCV needs an even number of blocks >= 2, got {n_blocks}")
    return list(itertools.combinations(range(n_blocks), n_blocks // 2))


@dataclass(frozen=True)
class PBOResult:
    pbo: float                      # share of splits whose in-sample best ranks below the OOS median
    n_splits: int
    logits: np.ndarray              # one logit of the OOS relative rank per split
    is_best_sharpe: np.ndarray      # in-sample Sharpe of the IS-best candidate, per split
    oos_sharpe_of_is_best: np.ndarray
    degradation_slope: float        # OLS slope of OOS on IS Sharpe of the selected candidate
    prob_oos_loss: float            # share of splits where the IS-best loses out of sample


def probability_of_backtest_overfitting(returns: np.ndarray, n_blocks: int = 16) -> PBOResult:
    """PBO of choosing the in-sample best of N candidates, from a T x N matrix of per-period returns.

    CSCV (Bailey et al. 2015): cut the T rows into S contiguous blocks; for each choice of S/2
    blocks as in-sample (the rest out of sample), find the in-sample best column by Sharpe, take
    its out-of-sample relative rank w in (0, 1) and the logit l = ln(w / (1 - w)); PBO is the
    share of splits with l <= 0.
    """
    m = np.asarray(returns, dtype=float)
    if m.ndim != 2 or m.shape[1] < 2:
        raise ValueError(f"PBO needs a T x N matrix with N >= 2 candidates, got shape {m.shape}")
    n_obs, n_cand = m.shape
    if n_obs < 2 * n_blocks:
        raise ValueError(f"PBO with {n_blocks} blocks needs at least {2 * n_blocks} rows, got {n_obs}")
    # Sufficient statistics per block make each split O(S N) instead of O(T N).
    edges = np.linspace(0, n_obs, n_blocks + 1).astype(int)
    counts = np.diff(edges).astype(float)
    sums = np.add.reduceat(m, edges[:-1], axis=0)
    sumsq = np.add.reduceat(m * m, edges[:-1], axis=0)

    splits = np.array(cscv_splits(n_blocks))
    in_mask = np.zeros((len(splits), n_blocks), dtype=bool)
    in_mask[np.arange(len(splits))[:, None], splits] = True

    def split_sharpe(mask: np.ndarray) -> np.ndarray:
        n = mask.astype(float) @ counts
        s = mask.astype(float) @ sums
        q = mask.astype(float) @ sumsq
        mean = s / n[:, None]
        var = (q - n[:, None] * mean * mean) / (n[:, None] - 1)
        std = np.sqrt(np.maximum(var, 0.0))
        return np.where(std > 0, mean / np.where(std > 0, std, 1.0), 0.0)

    sr_in = split_sharpe(in_mask)
    sr_out = split_sharpe(~in_mask)
    best = sr_in.argmax(axis=1)
    rows = np.arange(len(splits))
    oos_best = sr_out[rows, best]
    # relative rank in (0, 1): (rank among N, 1-based, ties averaged) / (N + 1)
    ranks = stats.rankdata(sr_out, axis=1)[rows, best]
    w = ranks / (n_cand + 1)
    logits = np.log(w / (1 - w))
    is_best = sr_in[rows, best]
    slope = float(np.polyfit(is_best, oos_best, 1)[0]) if np.ptp(is_best) > 0 else 0.0
    return PBOResult(
        pbo=float(np.mean(logits <= 0)),
        n_splits=len(splits),
        logits=logits,
        is_best_sharpe=is_best,
        oos_sharpe_of_is_best=oos_best,
        degradation_slope=slope,
        prob_oos_loss=float(np.mean(oos_best < 0)),
    )


@dataclass(frozen=True)
class Decay:
    in_sample_sharpe: float
    out_of_sample_sharpe: float
    difference: float       # OOS - IS (negative: the edge shrank)
    retained: float         # OOS / IS when IS > 0, else nan


def sharpe_decay(in_sample_sr: float, out_of_sample_sr: float) -> Decay:
    """In-sample to out-of-sample decay of a Sharpe ratio (any consistent units)."""
    retained = out_of_sample_sr / in_sample_sr if in_sample_sr > 0 else float("nan")
    return Decay(in_sample_sr, out_of_sample_sr, out_of_sample_sr - in_sample_sr, retained)
