"""`osd top --json` round trip: structures backtested by the real engine are logged through the
sink, read back with `osd top --json`, and `osd backtest --dna @FILE` reproduces the logged
lockbox metrics exactly."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from click.testing import CliRunner

from backtest.bs_market import make_chains, write_dataset
from backtest.costs import Costs
from backtest.dna import StructureDNA
from backtest.engine import run
from backtest.index import ChainIndex
from discovery.cli import main
from discovery.tracking import MlflowSink, StructureRecord
from tests.mlflow_server import fresh_sqlite_store

DNAS = [
    {"structure_type": "iron_condor", "front_dte_min": 10, "front_dte_max": 30, "dte_exit": 3},
    {"structure_type": "short_put", "front_dte_min": 14, "front_dte_max": 40, "short_strike_delta": 0.25},
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    chains, closes = make_chains(seed=5, n_days=60, strikes_each_side=10)
    out = write_dataset(tmp_path_factory.mktemp("data") / "ds", chains, closes)
    return out, closes


def record(rank: int, dna: StructureDNA, index: ChainIndex, closes: pd.Series) -> StructureRecord:
    result = run(dna, index, None, None, Costs())
    entry = pd.Timestamp(result.trades["entry_date"].iloc[0])
    return StructureRecord.from_lockbox(rank, result, float(closes.loc[entry]), in_sample={}, out_of_sample={},
                                        honesty={}, verdict="no honesty statistics in this test")


def test_top_json_backtests_to_the_logged_metrics(dataset, tmp_path, monkeypatch):
    data, closes = dataset
    index = ChainIndex.from_dataset(data, "TEST")
    structures = [record(rank, StructureDNA.from_dict(d), index, closes) for rank, d in enumerate(DNAS, 1)]
    assert all(s.trade_log.shape[0] > 0 for s in structures)
    condor, short_put = (s.legs for s in structures)
    assert [(leg.right, leg.qty > 0) for leg in short_put] == [("P", False)]
    assert sorted((leg.right, leg.qty > 0) for leg in condor) == [("C", False), ("C", True), ("P", False), ("P", True)]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    fresh_sqlite_store(tmp_path / "mlflow.db")  # the local default store, schema ready
    sink = MlflowSink("roundtrip")
    sink.start({"name": "roundtrip", "data": str(data)})
    sink.log_generation(0, {"best_fitness": 1.0})
    sink.finish({"discovered_structures": [s.dna for s in structures]}, pd.DataFrame({"genome": ["a"]}), structures)
    runner = CliRunner()
    top = runner.invoke(main, ["top", "--experiment", "roundtrip", "--json"])
    assert top.exit_code == 0, top.output
    (tmp_path / "top.json").write_text(top.output)
    for structure in structures:
        again = runner.invoke(main, ["backtest", "--data", str(data), "--symbol", "TEST", "--dna",
                                     f"@{tmp_path / 'top.json'}", "--rank", str(structure.rank), "--json"])
        assert again.exit_code == 0, again.output
        replayed = json.loads(again.output)["metrics"]
        logged = next(item for item in json.loads(top.output) if item["rank"] == structure.rank)["metrics"]
        numeric = {k: v for k, v in structure.lockbox.items() if isinstance(v, (int, float))}
        assert numeric
        for key in numeric:
            mine, theirs = logged[f"lockbox.{key}"], float(replayed[key])  # non-finite arrive as text
            assert (math.isnan(mine) and math.isnan(theirs)) or math.isclose(mine, theirs, rel_tol=1e-12), key


def test_backtest_rejects_a_bad_top_list(dataset, tmp_path):
    data, _ = dataset
    runner = CliRunner()
    listing = json.dumps([{"rank": 1, "dna": DNAS[0]}])
    missing = runner.invoke(main, ["backtest", "--data", str(data), "--symbol", "TEST", "--dna", listing, "--rank", "3"])
    assert missing.exit_code != 0 and "--rank 3: no such rank in the list (ranks: 1)" in missing.output
    not_top = runner.invoke(main, ["backtest", "--data", str(data), "--symbol", "TEST", "--dna", "[1, 2]"])
    assert not_top.exit_code != 0 and "osd top --json" in not_top.output
