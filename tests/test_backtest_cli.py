import json

import pandas as pd
import pytest
from click.testing import CliRunner

from backtest.bs_market import make_chains, write_dataset
from discovery.cli import main

DNA = '{"structure_type": "iron_condor", "front_dte_min": 10, "front_dte_max": 30, "dte_exit": 3}'


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    chains, closes = make_chains(seed=3, n_days=40, strikes_each_side=10)
    out = write_dataset(tmp_path_factory.mktemp("data") / "ds", chains, closes)
    return out


def invoke(*args):
    return CliRunner().invoke(main, ["backtest", *map(str, args)])


def test_backtest_json_and_outputs(dataset, tmp_path):
    trades, equity = tmp_path / "trades.csv", tmp_path / "equity.parquet"
    res = invoke("--data", dataset, "--symbol", "TEST", "--dna", DNA, "--fill", "legs_slippage",
                 "--trades-out", trades, "--equity-out", equity, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["fill_model"] == "legs_slippage" and out["days"] == 40
    assert out["metrics"]["n_trades"] > 0
    eq = pd.read_parquet(equity)
    assert list(eq.columns[:2]) == ["date", "equity"] and len(eq) == 40
    tr = pd.read_csv(trades)
    assert {"entry_date", "exit_date", "pnl", "exit_reason", "leg1_strike"} <= set(tr.columns)


def test_backtest_dna_from_file_and_window(dataset, tmp_path):
    f = tmp_path / "dna.json"
    f.write_text(DNA)
    res = invoke("--data", dataset, "--symbol", "TEST", "--dna", f"@{f}", "--start", "2021-01-11", "--end", "2021-02-05")
    assert res.exit_code == 0, res.output
    assert "iron_condor, fill cross" in res.output and "sharpe" in res.output


@pytest.mark.parametrize("args, message", [
    (["--dna", '{"structure_type": "calendar_put", "back_dte_min": 20, "front_dte_max": 30, "wings": 1}'],
     "unknown key 'wings'"),
    (["--dna", '{"structure_type": "calendar_put", "back_dte_min": 20, "back_dte_max": 40, "front_dte_max": 30}'],
     "back month not after front month"),
    (["--dna", DNA, "--start", "2030-01-01"], "no TEST option chains between 2030-01-01"),
    (["--dna", "{not json"], "DNA is not valid JSON"),
    (["--dna", "@/nonexistent/dna.json"], "cannot read"),
    (["--dna", DNA, "--trades-out", "x.xlsx"], "unknown extension"),
])
def test_backtest_user_errors_are_one_line(dataset, args, message):
    res = invoke("--data", dataset, "--symbol", "TEST", *args)
    assert res.exit_code != 0
    assert message in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
