"""End to end on a small planted synthetic market: reproducibility, resume, recovery (fast subset).
The market and the serial run (fixtures ``small_planted_market``, ``serial_run``) are in conftest.py."""
import json
from pathlib import Path

import pytest

from discovery.executors import processes
from discovery.recovery import recovery, recovery_config, small_market
from discovery.run import RESULT_FILE, discover

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
    assert result["n_trials"] == result["generations"][-1]["distinct_evaluated"]
    assert 0 <= result["pbo"]["pbo"] <= 1 and result["pbo"]["n_splits"] == 70
    assert (serial_run / "summary.txt").read_text().count("Verdict:") == 1


def test_identical_with_a_two_process_pool(small_planted_market, serial_run, tmp_path):
    with processes(2) as pool_map:
        discover(small_config(small_planted_market), tmp_path, map_fn=pool_map)
    assert without_timestamps(tmp_path) == without_timestamps(serial_run)


def test_resume_after_generation_1_gives_the_identical_result(small_planted_market, serial_run, tmp_path):
    class Interrupted(Exception):
        pass

    def interrupt(record):
        if record["generation"] == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        discover(small_config(small_planted_market), tmp_path, on_generation=interrupt)
    assert not (tmp_path / RESULT_FILE).exists()
    discover(small_config(small_planted_market), tmp_path, resume=True)
    assert without_timestamps(tmp_path) == without_timestamps(serial_run)


def test_planted_edge_is_recovered(serial_run):
    rec = recovery(json.loads((serial_run / RESULT_FILE).read_text()))
    assert rec["checks"]["family"] and rec["recovered"], rec


def test_nothing_passes_the_deflated_sharpe_on_a_null_market(tmp_path):
    market = small_market(tmp_path / "null", 21, None)
    result = discover(recovery_config(market, seed=21, population=40, generations=2, offspring=20), tmp_path / "run")
    dsr_min = result["thresholds"]["dsr_min"]
    assert not any(s["deflated_sharpe"] >= dsr_min for s in result["discovered_structures"])
    assert result["n_passed"] == 0 and result["verdict"].startswith("nothing passed")
    assert "What would be needed" in (tmp_path / "run" / "summary.txt").read_text()
