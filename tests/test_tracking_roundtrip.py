"""`osd backtest --dna` with `osd top --json` lists: its input checks, and the payoff legs of
engine trades (the round trip through a real discovery and MLflow store is in test_discover)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from backtest.bs_market import make_chains, write_dataset
from backtest.costs import Costs
from backtest.dna import StructureDNA
from backtest.engine import run
from backtest.index import ChainIndex
from discovery.cli import main
from discovery.tracking import payoff_legs

DNAS = [
    {"structure_type": "iron_condor", "front_dte_min": 10, "front_dte_max": 30, "dte_exit": 3},
    {"structure_type": "short_put", "front_dte_min": 14, "front_dte_max": 40, "short_strike_delta": 0.25},
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    chains, closes = make_chains(seed=5, n_days=60, strikes_each_side=10)
    out = write_dataset(tmp_path_factory.mktemp("data") / "ds", chains, closes)
    return out, closes


def test_payoff_legs_of_engine_trades(dataset):
    data, _ = dataset
    index = ChainIndex.from_dataset(data, "TEST")
    condor, short_put = (payoff_legs(run(StructureDNA.from_dict(d), index, None, None, Costs()).trades.iloc[0])
                         for d in DNAS)
    assert [(leg.right, leg.qty > 0) for leg in short_put] == [("P", False)]
    assert sorted((leg.right, leg.qty > 0) for leg in condor) == [("C", False), ("C", True), ("P", False), ("P", True)]


def test_backtest_rejects_a_bad_top_list(dataset, tmp_path):
    data, _ = dataset
    runner = CliRunner()
    listing = json.dumps([{"rank": 1, "dna": DNAS[0]}])
    missing = runner.invoke(main, ["backtest", "--data", str(data), "--symbol", "TEST", "--dna", listing, "--rank", "3"])
    assert missing.exit_code != 0 and "--rank 3: no such rank in the list (ranks: 1)" in missing.output
    not_top = runner.invoke(main, ["backtest", "--data", str(data), "--symbol", "TEST", "--dna", "[1, 2]"])
    assert not_top.exit_code != 0 and "osd top --json" in not_top.output
    bare = runner.invoke(main, ["backtest", "--dna", json.dumps(DNAS[0])])
    assert bare.exit_code != 0 and "--data and --symbol are needed" in bare.output
    two = runner.invoke(main, ["backtest", "--data", str(data), "--symbol", "TEST", "--trades-out", "t.csv",
                               "--dna", json.dumps([{"rank": 1, "dna": DNAS[0]}, {"rank": 2, "dna": DNAS[1]}])])
    assert two.exit_code != 0 and "pick it with --rank" in two.output
