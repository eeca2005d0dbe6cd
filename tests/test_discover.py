"""End to end on a small planted synthetic market: reproducibility, resume, recovery (fast subset).
The market and the serial run (fixtures ``small_planted_market``, ``serial_run``) are in conftest.py."""
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from backtest.dna import StructureDNA, StructureType
from backtest.store import Dataset
from backtest.synth import MarketModel
from discovery.evaluate import gate_mask, gates_for, iv_band, market_for
from discovery.executors import processes
from discovery.recovery import recovery, recovery_config, small_market
from discovery.run import RESULT_FILE, discover, make_context
from models.features.rolling import rolling_percentile
from models.gates import IVPercentileGate
from tests.conftest import Interrupted, interrupt_after

PLANT = [{
    "name": "rich_calm_puts",
    "favours": ["short_put", "put_credit_spread", "short_strangle", "iron_condor", "put_calendar", "put_diagonal"],
    "right": "P", "dte": [20, 40], "abs_delta": [0.15, 0.35], "regimes": ["calm"], "vol_points": 8.0,
}]


def small_config(market: Path):
    return recovery_config(market, seed=5, structure_types=[
        "short_put", "put_credit_spread", "long_put", "long_call", "short_call", "iron_condor",
        "long_straddle", "call_credit_spread"])


def without_timestamps(path: Path) -> dict:
    result = json.loads((path / RESULT_FILE).read_text())
    result.pop("timestamp"), result.pop("elapsed_s")
    result["data"].pop("path")
    return result


def test_report_has_the_seed_format_and_the_honesty_statistics(serial_run):
    result = json.loads((serial_run / RESULT_FILE).read_text())
    top = result["discovered_structures"][0]
    for key in ("rank", "structure_type", "front_dte_min", "front_dte_max", "long_strike_delta",
                "short_strike_delta", "entry_regime", "profit_target_pct", "stop_loss_pct",
                "backtest_sharpe", "backtest_return_pct", "win_rate_pct", "n_trades",
                "lockbox", "deflated_sharpe", "decay", "passed", "reasons"):
        assert key in top
    assert result["n_trials"] == result["generations"][-1]["distinct_evaluated"] + result["regime_refinement_trials"]
    assert 0 < result["regime_refinement_trials"] <= 2 * 3  # an all-regime leader narrowed to calm or stressed, 3 leaders
    assert 0 <= result["pbo"]["pbo"] <= 1 and result["pbo"]["n_splits"] == 70
    assert (serial_run / "summary.txt").read_text().count("Verdict:") == 1


def test_identical_with_a_two_process_pool(small_planted_market, serial_run, tmp_path):
    with processes(2) as pool_map:
        discover(small_config(small_planted_market), tmp_path, map_fn=pool_map)
    assert without_timestamps(tmp_path) == without_timestamps(serial_run)


def test_resume_after_generation_1_gives_the_identical_result(small_planted_market, serial_run, tmp_path):
    with pytest.raises(Interrupted):
        discover(small_config(small_planted_market), tmp_path, on_generation=interrupt_after(1))
    assert not (tmp_path / RESULT_FILE).exists()
    lockbox_runs = {}
    result = discover(small_config(small_planted_market), tmp_path, resume=True, on_lockbox=lockbox_runs.update)
    assert without_timestamps(tmp_path) == without_timestamps(serial_run)
    # the trade log the run kept is the one a replay of the lockbox gives (the demo's recovery uses it)
    assert sorted(lockbox_runs) == [s["rank"] for s in result["discovered_structures"]]
    kept = recovery(result, small_config(small_planted_market), top_trades=lockbox_runs[1].result.trades)
    assert kept == recovery(result, small_config(small_planted_market))


def test_planted_edge_is_recovered(small_planted_market, serial_run):
    rec = recovery(json.loads((serial_run / RESULT_FILE).read_text()), small_config(small_planted_market))
    assert rec["recovered"] and rec["checks"]["harvests"] and rec["checks"]["in_band"], rec
    assert 20 - 2.5 <= rec["checks"]["exposed_dte"] <= 40 + 2.5


def test_the_regime_gene_finds_the_one_regime_the_edge_lives_in(tmp_path):
    """Issue 9: puts rich in calm regimes only, on a market stressed half the time (the default
    market is stressed ~10% of days, too few for a small search to see what the regime costs).
    The search evolves the entry-regime gene (both regimes or either one); its best genome trades
    the calm regime and excludes the stressed one."""
    half_stressed = MarketModel(p_calm_to_stressed=1 / 60, p_stressed_to_calm=1 / 60)
    market = small_market(tmp_path / "market", 4, PLANT, years=2, model=half_stressed)
    config = recovery_config(market, seed=5, population=24, generations=3,
                             structure_types=["short_put", "put_credit_spread", "long_put"])
    assert config.space.evolve_regimes and config.space.regimes == ["calm", "stressed"]
    result = discover(config, tmp_path / "run")
    assert result["data"]["plants"][0]["regimes"] == ["calm"]
    top = result["discovered_structures"][0]
    assert top["structure_type"] in ("short_put", "put_credit_spread") and top["entry_regime_names"] == ["calm"], top


def test_iv_percentile_is_one_scale_converted_at_the_genome(realistic_market):
    """The market's IV percentile is a share in [0, 1], computed as the feature table computes
    it; the genome's band is in percent (seed 000) and converted once, into a models.gates gate."""
    context = make_context(recovery_config(realistic_market, seed=1), realistic_market)
    gates_of_market = market_for(context).gates
    vix = Dataset(realistic_market).read_index(context.iv_index).column("close").to_numpy()
    np.testing.assert_array_equal(gates_of_market.iv_percentile, rolling_percentile(pd.Series(vix)).to_numpy())
    known = ~np.isnan(gates_of_market.iv_percentile)
    assert (gates_of_market.iv_percentile[known] > 0).all() and (gates_of_market.iv_percentile[known] <= 1).all()
    banded = StructureDNA(structure_type=StructureType("short_put"), min_iv_percentile=40.0, max_iv_percentile=60.0)
    assert iv_band(banded) == IVPercentileGate(0.4, 0.6)
    expected = (gates_of_market.iv_percentile >= 0.4) & (gates_of_market.iv_percentile <= 0.6)
    np.testing.assert_array_equal(gate_mask(banded, gates_of_market), expected)
    assert 0.1 < expected.mean() < 0.3 and not expected[~known].any()  # unknown percentile: no entry
    assert gate_mask(StructureDNA(structure_type=StructureType("short_put")), gates_of_market).all()  # 0-100: no filter
    gates = gates_for(context)  # the driver's light load, on the bar days: the same inputs
    np.testing.assert_array_equal(gates.iv_percentile, gates_of_market.iv_percentile)
    assert gates.n_days == gates_of_market.n_days


def test_nothing_passes_the_deflated_sharpe_on_a_null_market(tmp_path):
    market = small_market(tmp_path / "null", 21, None)
    result = discover(recovery_config(market, seed=21, population=40, generations=2, offspring=20), tmp_path / "run")
    dsr_min = result["thresholds"]["dsr_min"]
    assert not any(s["deflated_sharpe"] >= dsr_min for s in result["discovered_structures"])
    assert result["n_passed"] == 0 and result["verdict"].startswith("nothing passed")
    assert "What would be needed" in (tmp_path / "run" / "summary.txt").read_text()


def test_top_json_replays_to_the_logged_lockbox_metrics(serial_run, small_planted_market, tmp_path):
    """`osd top --json` -> `osd backtest --dna @FILE` recomputes each structure's lockbox (same
    dataset, span, entry gates, costs, metric function) and gets exactly the logged figures."""
    from discovery.cli import main

    runner = CliRunner()
    uri = ["--tracking-uri", f"sqlite:///{serial_run / 'mlflow.db'}"]
    top = runner.invoke(main, ["top", "--experiment", "small", "--json", *uri])
    assert top.exit_code == 0, top.output
    listed = json.loads(top.output)
    report = json.loads((serial_run / RESULT_FILE).read_text())["discovered_structures"]
    assert [item["rank"] for item in listed] == [s["rank"] for s in report]
    (tmp_path / "top.json").write_text(top.output)
    replay = runner.invoke(main, ["backtest", "--dna", f"@{tmp_path / 'top.json'}", "--json"])
    assert replay.exit_code == 0, replay.output
    replayed = json.loads(replay.output)
    assert [r["rank"] for r in replayed] == [item["rank"] for item in listed]
    for item, again, reported in zip(listed, replayed, report):
        for key in ("sharpe", "sharpe_annual", "total_pnl", "max_drawdown", "n_trades"):
            logged = item["metrics"][f"lockbox.{key}"]
            assert math.isclose(again["metrics"][key], logged, rel_tol=1e-12, abs_tol=1e-12), (item["rank"], key)
            assert math.isclose(reported["lockbox"][key], logged, rel_tol=1e-12, abs_tol=1e-12), (item["rank"], key)
        assert again["mismatched"] == [] and again["start"] == item["evaluation"]["lockbox_dates"][0]
    text = runner.invoke(main, ["backtest", "--dna", f"@{tmp_path / 'top.json'}", "--rank", "1"])
    assert text.exit_code == 0 and "replay matches the logged lockbox metrics" in text.output

    moved = [{**item, "evaluation": {**item["evaluation"], "dataset": str(tmp_path / "gone")}} for item in listed]
    (tmp_path / "moved.json").write_text(json.dumps(moved))
    missing = runner.invoke(main, ["backtest", "--dna", f"@{tmp_path / 'moved.json'}"])
    assert missing.exit_code != 0 and f"dataset {tmp_path / 'gone'}" in missing.output and "--data" in missing.output
    found = runner.invoke(main, ["backtest", "--dna", f"@{tmp_path / 'moved.json'}", "--rank", "1",
                                 "--data", str(small_planted_market), "--json"])
    assert found.exit_code == 0 and json.loads(found.output)["mismatched"] == []
    # the replay applies the entry gates: a narrower IV-percentile band changes its figures
    narrowed = [{**listed[0], "dna": {**listed[0]["dna"], "min_iv_percentile": 60.0, "max_iv_percentile": 100.0}}]
    (tmp_path / "narrowed.json").write_text(json.dumps(narrowed))
    gated = runner.invoke(main, ["backtest", "--dna", f"@{tmp_path / 'narrowed.json'}", "--json"])
    assert gated.exit_code == 0 and "n_trades" in json.loads(gated.output)[0]["mismatched"]
    conflict = runner.invoke(main, ["backtest", "--dna", f"@{tmp_path / 'top.json'}", "--fill", "cross"])
    assert conflict.exit_code != 0 and "--fill" in conflict.output

