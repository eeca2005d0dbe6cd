"""Every discovery report answers "did discovery beat the guesses?": the seeds' baselines on the
lockbox beside the discovered structures (JSON, summary, MLflow)."""
import json

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from backtest.index import ChainIndex
from backtest.store import Dataset
from backtest.errors import UserError
from discovery import report
from discovery.baselines import compare, lockbox_baselines, strict_json, structure_label
from discovery.config import parse_config
from discovery.run import RESULT_FILE, SUMMARY_FILE, discover, make_context
from discovery.spool import Spool
from discovery.tracking import MlflowSink
from models.baselines import run_baselines
from models.features.build import read_feature_table
from tests.mlflow_server import fresh_sqlite_store
from tests.test_discover import small_config


@pytest.fixture(scope="module")
def result(serial_run) -> dict:
    return json.loads((serial_run / RESULT_FILE).read_text())


def test_report_baselines_equal_a_direct_run_on_the_lockbox(result, small_planted_market):
    config = small_config(small_planted_market)
    lo, hi = make_context(config, small_planted_market).layout.lockbox
    index = ChainIndex.from_dataset(Dataset(small_planted_market), config.underlying)
    start, end = index.dates[lo], index.dates[hi - 1]
    features = read_feature_table(small_planted_market, config.underlying)
    direct = run_baselines(index, features.loc[:pd.Timestamp(end)], start, end, config.make_costs())
    section = result["baselines"]
    assert (section["start"], section["end"]) == (str(start), str(end))
    assert len(section["entries"]) == len(direct) == 6
    for entry, expected in zip(section["entries"], direct):
        assert {k: v for k, v in entry.items() if k != "lockbox"} == json.loads(json.dumps(strict_json(expected)))
        # the structures' metric function on the same account gives the account's own figures
        box = entry["lockbox"]
        assert box["sharpe_annual"] == pytest.approx(expected["sharpe"], rel=1e-9, abs=1e-12)
        assert box["total_return"] == pytest.approx(expected["total_return"], rel=1e-9, abs=1e-12)
        assert box["max_drawdown"] == pytest.approx(expected["max_drawdown"], rel=1e-9, abs=1e-12)
        assert box["n_days"] == hi - lo and box["n_trades"] >= expected["n_trades"]
    assert any(e["lockbox"]["n_trades"] > 0 for e in section["entries"])
    best = max(section["entries"], key=lambda e: e["lockbox"]["sharpe_annual"])
    assert section["comparison"]["best_baseline"] == best["name"]
    for s in result["discovered_structures"]:
        assert s["vs_baselines"]["beats_best_baseline"] == (s["lockbox"]["sharpe_annual"] > best["lockbox"]["sharpe_annual"])


def structure(rank: int, kind: str, sharpe: float, passed: bool) -> dict:
    return {"rank": rank, "structure_type": kind, "passed": passed, "lockbox": {"sharpe_annual": sharpe}}


BASELINES = [{"name": "a", "lockbox": {"sharpe_annual": 0.5}}, {"name": "b", "lockbox": {"sharpe_annual": -1.0}},
             {"name": "c", "error": "no feature table"}]


def test_comparison_flags_each_structure_and_counts_only_passed_ones():
    structures = [structure(1, "short_put", 2.0, False), structure(2, "iron_condor", 1.0, True),
                  structure(3, "long_call", 0.5, True)]  # a tie does not beat the baseline
    out = compare(structures, BASELINES)
    assert {r: c["beats_best_baseline"] for r, c in out["per_structure"].items()} == {1: True, 2: True, 3: False}
    assert out["per_structure"][2] == {"metric": "lockbox sharpe_annual", "value": 1.0, "best_baseline": "a",
                                       "best_baseline_value": 0.5, "beats_best_baseline": True}
    summary = out["summary"]
    assert summary["discovery_beats_baselines"] is True and summary["beaten_by_passed"] == ["#2 iron_condor"]
    assert summary["answer"] == ("best discovered lockbox Sharpe 1.00 (#2 iron_condor, passed) vs best baseline "
                                 "0.50 (a): discovery beats the guesses")

    structures[1]["passed"] = False  # only a rejected structure beats the guesses now
    summary = compare(structures, BASELINES)["summary"]
    assert summary["discovery_beats_baselines"] is False and summary["beaten_by"] == ["#1 short_put", "#2 iron_condor"]
    assert summary["answer"].startswith("best discovered lockbox Sharpe 2.00 (#1 short_put, rejected) vs best "
                                        "baseline 0.50 (a): discovery does not beat the guesses (only")

    summary = compare([structure(1, "short_put", 0.4, True)], BASELINES)["summary"]
    assert summary["discovery_beats_baselines"] is False and summary["answer"].endswith("does not beat the guesses")

    nothing_ran = compare(structures, BASELINES[2:])
    assert nothing_ran["per_structure"] == {} and nothing_ran["summary"]["discovery_beats_baselines"] is None
    assert "c: no feature table" in nothing_ran["summary"]["answer"]


def test_printed_report_shows_structures_and_baselines_side_by_side(result, serial_run):
    text = (serial_run / SUMMARY_FILE).read_text()
    assert text == report.summary(result)
    table = text[text.index("discovered structures vs the seeds' baselines"):text.index("Did discovery beat")]
    for s in result["discovered_structures"]:
        row = next(line for line in table.splitlines() if line.startswith(structure_label(s) + " "))
        assert f"{s['lockbox']['sharpe_annual']:.2f}" in row.split()
        assert row.split()[-1] == ("yes" if s["vs_baselines"]["beats_best_baseline"] else "no")
    for b in result["baselines"]["entries"]:
        row = next(line for line in table.splitlines() if line.startswith(b["name"] + " "))
        assert row.split()[1:3] == ["baseline", f"{b['lockbox']['sharpe_annual']:.2f}"]
    assert f"Did discovery beat the guesses? {result['baselines']['comparison']['answer']}." in text


def test_parent_run_gets_the_baselines(result, tmp_path):
    sink = MlflowSink("baselines", tracking_uri="http://127.0.0.1:9", spool_dir=tmp_path / "spool",
                      finish_timeout_s=0.0)
    sink.start({"name": "baselines"})
    sink.finish(result, pd.DataFrame({"genome": ["g0"]}), [])
    assert not sink.close()  # the server is away: everything stays spooled
    client = MlflowClient(fresh_sqlite_store(tmp_path / "store.db"))
    assert Spool.open(sink.spool_path).flush(client).pending == 0
    [parent] = client.search_runs([client.get_experiment_by_name("baselines").experiment_id])
    metrics = parent.data.metrics
    comparison = result["baselines"]["comparison"]
    assert metrics["discovery_beats_baselines"] == float(comparison["discovery_beats_baselines"])
    assert metrics["baseline.best_lockbox_sharpe_annual"] == pytest.approx(comparison["best_baseline_value"])
    for b in result["baselines"]["entries"]:
        assert metrics[f"baseline.{b['name']}.lockbox_sharpe_annual"] == pytest.approx(b["lockbox"]["sharpe_annual"])
        assert metrics[f"baseline.{b['name']}.lockbox_n_trades"] == b["lockbox"]["n_trades"]
    client.download_artifacts(parent.info.run_id, "baselines.json", str(tmp_path))
    assert json.loads((tmp_path / "baselines.json").read_text()) == result["baselines"]


def test_config_switches_baselines_off_and_validates_the_value(small_planted_market, tmp_path):
    raw = {"name": "x", "data": {"path": "d"}}
    assert parse_config(raw).report.baselines is True
    with pytest.raises(UserError, match=r"key 'report.baselines'.*got 'perhaps'"):
        parse_config({**raw, "report": {"baselines": "perhaps"}})
    with pytest.raises(UserError, match="unknown key 'report.baseline'"):
        parse_config({**raw, "report": {"baseline": False}})
    config = small_config(small_planted_market).model_copy(update={"report": parse_config(
        {**raw, "report": {"baselines": False}}).report})
    config = config.model_copy(update={"search": config.search.model_copy(update={"population": 4, "lambda_": 4,
                                                                                    "generations": 1})})
    off = discover(config, tmp_path)
    assert "baselines" not in off and all("vs_baselines" not in s for s in off["discovered_structures"])
    assert "Did discovery beat" not in (tmp_path / SUMMARY_FILE).read_text()


def test_a_dataset_where_features_cannot_be_written_reports_those_baselines_as_not_run(
        small_planted_market, monkeypatch):
    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(small_planted_market / "features"))

    monkeypatch.setattr("models.features.build.build_features", read_only)
    context = make_context(small_config(small_planted_market), small_planted_market)
    with pytest.warns(UserWarning, match="cannot build the feature table"):
        entries = lockbox_baselines(context, small_planted_market)
    assert [e["name"] for e in entries if "lockbox" in e] == ["seed000_long_straddle_60_90", "seed000_short_dated_gamma"]
    assert all(e["error"].startswith("no feature table") for e in entries if "lockbox" not in e)


def test_table_still_lists_the_structures_when_no_baseline_ran(result):
    structures = [{k: v for k, v in s.items() if k != "vs_baselines"} for s in result["discovered_structures"]]
    entries = [{"name": "seed001_regime_matrix", "error": "no feature table"}]
    lines = report.lockbox_table({**result, "discovered_structures": structures, "baselines": {
        **result["baselines"], "entries": entries, "comparison": compare(structures, entries)["summary"]}})
    assert [line.split()[0] for line in lines[3:-1]] == [f"#{s['rank']}" for s in structures] + ["seed001_regime_matrix"]
    assert lines[-2].split()[1:] == ["baseline", "not", "run:", "no", "feature", "table"]
    assert lines[-1].startswith("Did discovery beat the guesses? no baseline ran on the lockbox")
