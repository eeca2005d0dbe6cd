"""Run configs: the shipped ones load; every bad input is one clear line before any compute."""
from pathlib import Path

import pytest
import yaml

from backtest.errors import UserError
from discovery.config import load_config, parse_config
from discovery.run import check_before_compute

REPO = Path(__file__).resolve().parents[1]
BASE = {
    "name": "t",
    "data": {"synth": {"symbols": ["SPY"], "start": "2019-01-01", "end": "2023-12-31"}},
    "space": {"genes": {"front_dte_min": [7, 30], "front_dte_max": [14, 45]}},
}


def with_(path: str, value, base=BASE):
    raw = yaml.safe_load(yaml.safe_dump(base))
    node = raw
    *parents, leaf = path.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    return raw


@pytest.mark.parametrize("name", ["demo.yaml", "spy_2020_2024.yaml"])
def test_shipped_configs_load(name):
    config = load_config(REPO / "configs" / name)
    assert config.embargo_days >= config.space.max_holding_trading_days()
    check_before_compute(config)


def test_seed_run_config_matches_the_seed():
    c = load_config(REPO / "configs" / "spy_2020_2024.yaml")
    assert (c.search.population, c.search.generations, c.underlying) == (100, 50, "SPY")
    assert (str(c.data.synth.start), str(c.data.synth.end)) == ("2020-01-01", "2024-12-31")


@pytest.mark.parametrize("raw, message", [
    (with_("search.populaton", 10), "unknown key 'search.populaton'"),
    (with_("colour", "red"), "unknown key 'colour'"),
    (with_("space.structure_types", []), "space.structure_types"),
    (with_("space.structure_types", ["butterfly_spread"]), "unknown structure type"),
    (with_("space.genes.front_dte_min", [50, 60]), "impossible search space"),
    (with_("space.genes.wingspan", [1, 2]), "unknown gene 'wingspan'"),
    (with_("space.genes.spread_width_strikes", [2.2, 2.8]), "no integer inside"),
    (with_("space.genes.long_strike_delta", [0.5, 1.5]), "leave the engine's range"),
    (with_("walk_forward.embargo_days", 5), "shorter than the longest possible holding period"),
    (with_("walk_forward.lockbox_days", 10), "too short to hold one trade"),
    (with_("search.cxpb", 0.8), "cxpb + mutpb"),
    (with_("search.objectives", ["fitness", "n_trades"]), "use algorithm: nsga2"),
    (with_("costs", {"fill": "midpoint"}), "fill"),
    (with_("costs", {"spread_tax": 1}), "spread_tax"),
    (with_("honesty.pbo_blocks", 7), "must be even"),
    (with_("data.path", "/x"), "exactly one of data.path"),
    (with_("underlying", "QQQ"), "not among data.synth.symbols"),
])
def test_bad_config_is_one_clear_line(raw, message):
    with pytest.raises(UserError) as err:
        parse_config(raw, "run.yaml")
    text = str(err.value)
    assert message in text and text.startswith("run.yaml: ") and "\n" not in text


def test_data_shorter_than_the_folds_need_fails_before_compute():
    config = parse_config(with_("data.synth.end", "2019-09-30"), "run.yaml")
    with pytest.raises(UserError, match="need"):
        check_before_compute(config)


def test_missing_dataset_and_bad_yaml(tmp_path):
    config = parse_config(with_("data", {"path": str(tmp_path / "none")}), "run.yaml")
    with pytest.raises(UserError, match="does not exist"):
        check_before_compute(config)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(UserError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("args, message", [
    (["--executor", "dask"], "unknown executor 'dask'"),
    (["--executor", "serial", "--address", "auto"], "--address is only for --executor ray"),
    (["--seed", "x"], "'x' is not a valid integer"),
])
def test_discover_cli_bad_arguments_are_one_line(args, message):
    from click.testing import CliRunner

    from discovery.cli import main

    r = CliRunner().invoke(main, ["discover", "--config", str(REPO / "configs" / "demo.yaml"), *args])
    assert r.exit_code != 0 and message in r.output


def test_discover_cli_unknown_key(tmp_path):
    from click.testing import CliRunner

    from discovery.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(with_("search.populaton", 5)))
    r = CliRunner().invoke(main, ["discover", "--config", str(bad)])
    assert r.exit_code == 1
    assert r.output.strip().splitlines()[-1] == f"Error: {bad}: unknown key 'search.populaton'"
