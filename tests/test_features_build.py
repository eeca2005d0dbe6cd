"""`osd features build`: look-ahead canary, incremental = full, missing inputs, CLI."""
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from backtest.store import Dataset, DatasetWriter
from discovery.cli import main
from models.features.build import MissingInputWarning, build_features, read_feature_table
from models.features.table import BAR_DEPENDENT, FEATURE_COLUMNS, VIX_DEPENDENT
from models.gates import entry_mask
from tests.feature_market import write_market

N_DAYS, T = 300, 270


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    path = tmp_path_factory.mktemp("fm") / "full"
    write_market(path, n_days=N_DAYS)
    build_features(path)
    return path


def test_table_has_every_feature_keyed_by_date(market):
    table = read_feature_table(market, "SPY")
    assert list(table.columns) == list(FEATURE_COLUMNS)
    assert len(table) == N_DAYS and table.index.is_unique and table.index.is_monotonic_increasing
    assert table.attrs["regime_labels"]["rule"][0] == "low_vol"
    late = table.iloc[-20:]
    assert late.notna().all().sum() >= len(FEATURE_COLUMNS) - 4  # only garch / 200-day items may be short


def test_look_ahead_canary(market, tmp_path):
    """Perturb every chain row, bar and VIX value after day T: features up to T are unchanged."""
    vols = np.full(N_DAYS, 0.18)
    vols[T + 1:] = 0.45  # a different market after T (prices, IVs, greeks, VIX)
    dates, _, _ = write_market(tmp_path / "perturbed", n_days=N_DAYS, vols=vols)
    build_features(tmp_path / "perturbed")
    a, b = read_feature_table(market, "SPY"), read_feature_table(tmp_path / "perturbed", "SPY")
    cut = pd.Timestamp(dates[T])
    assert not a.loc[cut:].iloc[1:].equals(b.loc[cut:].iloc[1:])  # the perturbation did change the future
    pd.testing.assert_frame_equal(a.loc[:cut], b.loc[:cut])


def _copy_until(src, out, last_day):
    ds = Dataset(src)
    with DatasetWriter(out) as w:
        w.write_chains("SPY", ds.read_chains("SPY", end=last_day), "part0")
        w.write_underlying("SPY", ds.read_underlying("SPY"))
        w.write_index("VIX", ds.read_index("VIX"))


def test_incremental_build_equals_full_build(market, tmp_path):
    days = read_feature_table(market, "SPY").index
    part = tmp_path / "part"
    _copy_until(market, part, days[199].date())
    first = build_features(part)
    assert first[0].days_computed == 200
    shutil.rmtree(part / "chains")
    shutil.copytree(market / "chains", part / "chains")  # 100 new days arrive
    second = build_features(part)
    assert (second[0].days_computed, second[0].days_total) == (100, N_DAYS)
    pd.testing.assert_frame_equal(read_feature_table(part, "SPY"), read_feature_table(market, "SPY"))
    assert build_features(part)[0].days_computed == 0


@pytest.mark.parametrize("missing", ["vix", "bars", "greeks"])
def test_missing_inputs_blank_only_dependent_features(market, tmp_path, missing):
    path = tmp_path / missing
    write_market(path, n_days=N_DAYS, with_vix=missing != "vix", with_bars=missing != "bars", greeks=missing != "greeks")
    expect = {"vix": "no VIX index", "bars": "no underlying bars", "greeks": "no chain column"}[missing]
    with pytest.warns(MissingInputWarning, match=expect) as record:
        build_features(path)
    full, part = read_feature_table(market, "SPY"), read_feature_table(path, "SPY")
    blank = [c for c in FEATURE_COLUMNS if part[c].isna().all()]
    changed = [c for c in FEATURE_COLUMNS if c not in blank and not part[c].equals(full[c])]
    named = str(record[0].message).split("NaN: ")[1].split(", ")
    assert set(blank) <= set(named)  # every blanked feature is named in the warning
    if missing == "vix":
        assert set(blank) == set(VIX_DEPENDENT) | {"regime_rule"}
        # bar features and options features are untouched; edges/regimes that use only them too
        assert changed == []
    elif missing == "bars":
        assert set(BAR_DEPENDENT) <= set(blank)
        # VIX itself survives; HV-based VIX features (hv_iv_ratio and rules on it) and the VRP edge go
        assert {"vix", "vix_rank", "atm_iv_30d", "pcr_oi", "gex_total_bn"}.isdisjoint(blank)
    else:
        assert {"net_delta", "gex_total_bn", "gamma_flip_strike", "iv_skew", "edge_gamma_pressure"} <= set(blank)
        assert {"atm_iv_30d", "iv_rank", "pcr_oi", "rsi_14", "vix", "regime_machine"}.isdisjoint(blank)
        assert {"atm_iv_30d", "pcr_oi", "rsi_14"}.isdisjoint(changed)


def test_cli_build_parallel_incremental_with_user_regimes(market, tmp_path):
    path = tmp_path / "cli"
    shutil.copytree(market, path)
    shutil.rmtree(path / "features")
    days = read_feature_table(market, "SPY").index
    assigned = np.where(np.arange(len(days)) < 150, "calm", "stressed")
    pq.write_table(pa.table({"date": days.date, "regime": assigned}), tmp_path / "mine.parquet")
    result = CliRunner().invoke(main, ["features", "build", "--data", str(path), "--workers", "2",
                                       "--regimes", str(tmp_path / "mine.parquet")])
    assert result.exit_code == 0, result.output
    assert "SPY: 300 new day(s) of 300" in result.output
    table = read_feature_table(path, "SPY")
    pd.testing.assert_frame_equal(table.drop(columns="regime_user"), read_feature_table(market, "SPY"))
    assert table.attrs["regime_labels"]["user"] == ["calm", "stressed"]
    mask = entry_mask(table, days.to_numpy(), [{"kind": "regime", "classifier": "user", "regimes": ["stressed"]}])
    assert mask.tolist() == (assigned == "stressed").tolist()
    again = CliRunner().invoke(main, ["features", "build", "--data", str(path), "--regimes", str(tmp_path / "mine.parquet")])
    assert "SPY: 0 new day(s) of 300; years written: none" in again.output
    # without the regime file the labels change: every year is rewritten without regime_user
    relabel = CliRunner().invoke(main, ["features", "build", "--data", str(path)])
    assert "SPY: 0 new day(s) of 300; years written: 2021, 2022" in relabel.output
    pd.testing.assert_frame_equal(read_feature_table(path, "SPY"), read_feature_table(market, "SPY"))
    bad = CliRunner().invoke(main, ["features", "build", "--data", str(tmp_path / "nope")])
    assert bad.exit_code != 0 and "not a dataset" in bad.output


def test_entry_mask_drives_the_backtest_kernel(market):
    """The mask over ChainIndex.dates plugs into the engine: trades open only on gated days."""
    from backtest.dna import StructureDNA
    from backtest.engine import run
    from backtest.index import ChainIndex

    index = ChainIndex.from_dataset(Dataset(market), "SPY")
    mask = entry_mask(read_feature_table(market, "SPY"), index.dates,
                      [{"kind": "iv_percentile", "low": 0.0, "high": 0.3}])
    assert 20 < mask.sum() < len(mask) - 20
    dna = StructureDNA("short_put", front_dte_min=14, front_dte_max=40, short_strike_delta=0.3, max_positions=2,
                       dte_exit=None, profit_target_pct=None, stop_loss_pct=None, max_hold_days=3,
                       max_position_pct=0.5)
    trades = run(dna, index, entry_mask=mask).trades
    assert len(trades) > 3
    gated = set(index.dates[mask])
    assert all(np.datetime64(d, "D") in gated for d in trades["entry_date"])
