"""Baselines: each seed's rule constructed in a small Black-Scholes market with a hand-made
feature table (features known on one day only, so exactly that day can enter)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from backtest.bs_market import make_chains, to_index
from backtest.costs import Costs
from backtest.store import DatasetWriter
from discovery.cli import main as cli
from models.baselines import run_baseline, run_baselines, sleeve_mask, strike_step
from models.baselines import catalog
from models.regimes import MACHINE_LABELS, RULE_LABELS

COLUMNS = ("iv_rank", "rsi_14", "price_vs_sma20", "price_vs_sma50", "trend_regime", "returns_1d",
           "regime_rule", "regime_machine") + tuple(f"edge_{e}{s}" for e in ("vrp", "term_structure", "skew",
                                                                             "event_vol", "gamma_pressure")
                                                     for s in ("", "_side"))
ENTRY_DAY = 3


@pytest.fixture(scope="module")
def market():
    chains, closes = make_chains(seed=5, n_days=70, vol=0.2, strikes_each_side=25, weekly_horizon_days=70)
    return chains, closes, to_index(chains, closes)


def features(index, **values) -> pd.DataFrame:
    """A feature table over the index days, NaN (unknown: every gate fails) except ENTRY_DAY."""
    table = pd.DataFrame(np.nan, index=pd.DatetimeIndex(index.dates.astype("datetime64[ns]")), columns=COLUMNS)
    for name, value in values.items():
        table.iloc[ENTRY_DAY, table.columns.get_loc(name)] = value
    return table


BULL_002 = dict(rsi_14=60.0, price_vs_sma20=0.01)
BEAR_002 = dict(rsi_14=40.0, price_vs_sma20=-0.01)


def entries(baseline, index, table, costs=Costs()):
    trades = run_baseline(baseline, index, table, costs=costs).trades()
    return trades[trades["entry_date"] == index.dates[ENTRY_DAY]]


def dte(row):
    return int((row["front_expiration"] - row["entry_date"]).days)


@pytest.mark.parametrize("iv_rank, filt, expected", [
    (0.70, BULL_002, {("primary_condor_ivr65", "iron_condor")}),
    (0.70, BEAR_002, {("primary_condor_ivr65", "iron_condor")}),
    (0.50, BULL_002, {("primary_put_spread", "put_credit_spread")}),
    (0.50, BEAR_002, {("primary_call_spread", "call_credit_spread")}),
    (0.85, BULL_002, {("primary_condor_ivr80", "iron_condor"), ("income_pop_condor", "iron_condor")}),
    (0.95, BEAR_002, {("primary_condor_ivr90", "iron_condor"), ("income_pop_condor", "iron_condor")}),
    (0.30, BULL_002, set()),  # below the IV-rank floor of 40
    (0.70, dict(rsi_14=60.0, price_vs_sma20=-0.01), set()),  # the filter disagrees with itself
])
def test_multi_book_structure_choice(market, iv_rank, filt, expected):
    *_, index = market
    got = entries(catalog.multi_book(), index, features(index, iv_rank=iv_rank, **filt))
    assert set(zip(got["sleeve"], got["structure_type"])) == expected
    for _, row in got.iterrows():
        window = (7, 14) if row["sleeve"] == "income_pop_condor" else (40, 50)
        assert window[0] <= dte(row) <= window[1]


def test_multi_book_confidence_tiers_size_the_condor(market):
    *_, index = market
    risk = {}
    for iv_rank in (0.70, 0.85, 0.95):
        got = entries(catalog.multi_book(), index, features(index, iv_rank=iv_rank, **BULL_002))
        risk[iv_rank] = got.loc[got["sleeve"].str.startswith("primary"), "risk"].iloc[0]
    assert risk[0.70] < risk[0.85] < risk[0.95] <= 0.08 * 100_000
    assert risk[0.95] > 0.05 * 100_000 >= risk[0.85] > 0.03 * 100_000 >= risk[0.70]


def test_multi_book_exit_rules(market):
    primary = next(s.dna for s in catalog.multi_book().sleeves if s.name == "primary_put_spread")
    assert (primary.profit_target_pct, primary.stop_loss_pct, primary.dte_exit, primary.delta_breach) == \
        (0.50, 1.50, 21, 0.30)
    *_, index = market
    trades = entries(catalog.multi_book(), index, features(index, iv_rank=0.5, **BULL_002))
    row = trades.iloc[0]
    assert row["exit_reason"] in ("profit_target", "stop_loss", "dte_exit", "delta_breach")
    held_to = int((row["front_expiration"] - row["exit_date"]).days)
    if row["exit_reason"] == "dte_exit":
        assert held_to <= 21 and held_to + 7 > 21  # the first trading days at or under 21 DTE
    else:
        assert held_to > 21


def test_multi_book_account_limits():
    limits = catalog.multi_book().limits
    assert (limits.max_total_risk, limits.max_delta) == (0.10, 0.30)


def test_current_strategy_fades_big_moves_at_high_iv_rank(market):
    *_, index = market
    drop = entries(catalog.current_strategy(), index, features(index, iv_rank=0.75, returns_1d=-0.02))
    rally = entries(catalog.current_strategy(), index, features(index, iv_rank=0.75, returns_1d=0.02))
    small = entries(catalog.current_strategy(), index, features(index, iv_rank=0.75, returns_1d=0.01))
    low_iv = entries(catalog.current_strategy(), index, features(index, iv_rank=0.60, returns_1d=-0.02))
    assert list(drop["structure_type"]) == ["put_credit_spread"]
    assert list(rally["structure_type"]) == ["call_credit_spread"]
    assert small.empty and low_iv.empty


def rule(name):
    return float(RULE_LABELS.index(name))


@pytest.mark.parametrize("regime, direction, structure", [
    ("low_vol", dict(price_vs_sma50=0.02, rsi_14=60.0), "call_debit_spread"),
    ("low_vol", dict(price_vs_sma50=-0.02, rsi_14=40.0), "put_debit_spread"),
    ("low_vol", dict(price_vs_sma50=0.0, rsi_14=50.0), None),  # neutral: no trade
    ("high_vol", dict(price_vs_sma50=0.02, rsi_14=60.0), "put_credit_spread"),
    ("high_vol", dict(price_vs_sma50=0.0, rsi_14=50.0), "iron_condor"),
    ("iv_contraction", dict(price_vs_sma50=-0.02, rsi_14=40.0), "call_credit_spread"),
    ("iv_expansion", dict(price_vs_sma50=0.02, rsi_14=60.0), "call_debit_spread"),
    ("neutral", dict(price_vs_sma50=0.02, rsi_14=60.0, trend_regime=1.0), "call_debit_spread"),
    ("neutral", dict(price_vs_sma50=0.02, rsi_14=60.0, trend_regime=0.0), None),  # low confidence
])
def test_regime_matrix(market, regime, direction, structure):
    *_, index = market
    baseline = catalog.regime_matrix(strike_step(index))
    # a $1M account: seed 001's 0.75% budget covers a $10-wide spread (no 1-contract floor here)
    got = entries(baseline, index, features(index, regime_rule=rule(regime), iv_rank=0.5, **direction),
                  Costs(initial_equity=1_000_000))
    assert list(got["structure_type"]) == ([] if structure is None else [structure])
    if structure:
        target = catalog.seed001_dte(regime, 0)
        assert abs(dte(got.iloc[0]) - target) <= catalog.SEED001_DTE_HALF_WINDOW


def test_regime_matrix_dte_and_size_follow_iv_rank_and_regime(market):
    *_, index = market
    baseline = catalog.regime_matrix(strike_step(index))
    bull = dict(price_vs_sma50=0.02, rsi_14=60.0)
    high = entries(baseline, index, features(index, regime_rule=rule("low_vol"), iv_rank=0.8, **bull))
    low = entries(baseline, index, features(index, regime_rule=rule("low_vol"), iv_rank=0.2, **bull))
    assert dte(high.iloc[0]) < dte(low.iloc[0])  # 23 vs 37 target DTE
    assert abs(dte(high.iloc[0]) - 23) <= 4 and abs(dte(low.iloc[0]) - 37) <= 4
    dnas = {s.name: s.dna for s in baseline.sleeves}
    assert dnas["low_vol_bull_ivr_mid"].max_position_pct == pytest.approx(0.02 * 1.0 * 0.75)
    assert dnas["high_vol_bull_ivr_mid"].max_position_pct == pytest.approx(0.02 * 0.5 * 0.75)
    # $10 wings in high vol, $5 in low vol, on this market's $1 strike grid
    assert (dnas["high_vol_bull_ivr_mid"].spread_width_strikes, dnas["low_vol_bull_ivr_mid"].spread_width_strikes) == (10, 5)


def machine(name):
    return float(MACHINE_LABELS.index(name))


@pytest.mark.parametrize("state, edges, expected", [
    ("TREND_UP", dict(edge_vrp=0.8, edge_vrp_side=1.0), ["put_credit_spread"]),
    ("CHOP", dict(edge_vrp=0.8, edge_vrp_side=1.0), ["iron_condor"]),
    ("TREND_UP", dict(edge_vrp=0.3, edge_vrp_side=1.0), []),  # edge too weak
    ("HIGH_VOL_PANIC", dict(edge_skew=0.9, edge_skew_side=1.0), []),  # panic: VRP only
    ("CHOP", dict(edge_skew=0.9, edge_skew_side=-1.0), ["call_credit_spread"]),
    ("LOW_VOL_GRIND", dict(edge_gamma_pressure=0.7, edge_gamma_pressure_side=1.0), ["iron_butterfly"]),
    ("LOW_VOL_GRIND", dict(edge_term_structure=0.7, edge_term_structure_side=-1.0), ["calendar_call"]),
])
def test_volmachine_regime_edge_structure(market, state, edges, expected):
    *_, index = market
    got = entries(catalog.volmachine(), index, features(index, regime_machine=machine(state), **edges))
    assert sorted(got["structure_type"]) == expected


def test_volmachine_risk_engine_numbers(market):
    b = catalog.volmachine()
    assert (b.limits.max_total_risk, b.limits.daily_loss, b.limits.weekly_loss, b.limits.max_drawdown) == \
        (0.10, 0.03, 0.05, 0.15)
    assert {s.dna.max_position_pct for s in b.sleeves} <= {0.01, 0.005}


def test_fixed_profiles_enter_whenever_flat(market):
    *_, index = market
    long_dated, short_dated = catalog.fixed_profiles()
    a = run_baseline(long_dated, index, None).trades()
    b = run_baseline(short_dated, index, None).trades()
    assert a["entry_date"].iloc[0] == index.dates[0] and 60 <= dte(a.iloc[0]) <= 90
    assert len(b) > 3 and all(7 <= dte(r) <= 14 for _, r in b.iterrows())
    assert set(a["structure_type"]) == set(b["structure_type"]) == {"long_straddle"}


def test_masks_use_only_that_days_features(market):
    *_, index = market
    table = features(index, iv_rank=0.7, **BULL_002)
    mask = sleeve_mask(table, index.dates, catalog.multi_book().sleeves[2].when)
    assert np.flatnonzero(mask).tolist() == [ENTRY_DAY]


def test_run_baselines_plain_dicts_and_hedge_warning(market):
    *_, index = market
    table = features(index, iv_rank=0.7, **BULL_002)
    reports = run_baselines(index, table, costs=Costs(fill="legs_slippage"))
    assert [r["name"] for r in reports] == ["seed000_long_straddle_60_90", "seed000_short_dated_gamma",
                                            "seed001_regime_matrix", "seed002_multi_book", "seed002_current",
                                            "seed003_volmachine"]
    json.dumps(reports)  # plain
    multi = reports[3]
    assert multi["n_trades"] + len([1 for s in multi["stress"]["scenarios"]]) > 0
    assert multi["fill_model"] == "legs_slippage"
    assert any("no VIX options" in w for w in multi["warnings"])
    without = run_baselines(index, None, names=["seed000_short_dated_gamma", "seed003_volmachine"])
    assert "error" not in without[0] and "feature table" in without[1]["error"]


def test_cli_table_and_json(market, tmp_path):
    chains, closes, _ = market
    import pyarrow as pa

    with DatasetWriter(tmp_path / "ds") as w:
        w.write_chains("TEST", pa.Table.from_pandas(chains, preserve_index=False), "part0")
    runner = CliRunner()
    out = runner.invoke(cli, ["baselines", "--data", str(tmp_path / "ds"), "--symbol", "TEST"])
    assert out.exit_code == 0, out.output
    assert "seed000_long_straddle_60_90" in out.output and "not run: no feature table" in out.output
    out = runner.invoke(cli, ["baselines", "--data", str(tmp_path / "ds"), "--symbol", "TEST", "--json",
                              "--baseline", "seed000_short_dated_gamma"])
    doc = json.loads(out.output, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert [b["name"] for b in doc["baselines"]] == ["seed000_short_dated_gamma"]
    bad = runner.invoke(cli, ["baselines", "--data", str(tmp_path / "ds"), "--symbol", "TEST", "--baseline", "nope"])
    assert bad.exit_code != 0 and "unknown baseline" in bad.output


def test_verdict_names_the_structures_that_beat_the_best_baseline():
    from models.baselines import verdict

    reports = [{"name": "a", "sharpe": 0.4}, {"name": "b", "sharpe": 1.1}, {"name": "c", "error": "no features"}]
    v = verdict(reports, {"x": 1.5, "y": 1.1, "z": 2.0})
    assert (v["best_baseline"], v["best_baseline_value"], v["beaten_by"]) == ("b", 1.1, ["z", "x"])
    assert v["discovery_beats_baselines"]
    assert not verdict(reports, {"y": 0.9})["discovery_beats_baselines"]
    with pytest.raises(Exception, match="no baseline ran"):
        verdict(reports[2:], {"x": 1.0})
