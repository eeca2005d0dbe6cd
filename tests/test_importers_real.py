"""The real samples in ../shared/data/real: SPX 2019 daily files (a CI-sized subset) and SPY 2021."""
import gzip
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from click.testing import CliRunner

from backtest.importers import FormatSpec
from backtest.importers.pipeline import import_files
from backtest.importers.rates import RateSchedule
from backtest.schema import CHAIN_KEY
from backtest.store import Dataset
from discovery.cli import main

SPX_RATES = RateSchedule.constant(0.024, 0.019)  # 2019: 3M T-bill ~2.4%, S&P 500 dividend yield ~1.9%


def _spx_files(real_data, n):
    return sorted((real_data / "spx-2019q2-cboe-delayed").glob("SPX_*.csv.gz"))[:n]


def _data_lines(path):
    with gzip.open(path, "rt") as f:
        return sum(1 for _ in f) - 1


def test_spx_subset_accounting_trading_class_and_idempotent_reimport(real_data, tmp_path):
    files = _spx_files(real_data, 3)
    out = tmp_path / "ds"
    first = import_files(files[:2], out, FormatSpec("long"), SPX_RATES)
    expected_rows = [_data_lines(f) for f in files]
    assert first.input_rows == sum(expected_rows[:2])
    assert first.imported + first.quarantined_rows == first.input_rows
    ds = Dataset(out)
    table = ds.read_chains("SPX")
    assert table.num_rows == first.imported
    assert ds.meta["underlyings"]["SPX"]["rows"] == first.imported
    assert ds.meta["quarantine"]["rows"] == first.quarantined_rows == ds.read_quarantine().num_rows
    # SPX (AM) and SPXW (PM) share expirations: the trading class keeps their keys distinct
    keys = table.group_by(CHAIN_KEY).aggregate([]).num_rows
    assert keys == table.num_rows
    roots = table.group_by(["expiration"]).aggregate([("root", "count_distinct")])
    assert pc.max(roots.column("root_count_distinct")).as_py() == 2
    assert set(pc.unique(table.column("style")).to_pylist()) == {"E"}
    # theta and vega are not in these files: the engine fills them wherever there is a volatility
    # and time left (options on their expiration day get none)
    has_vol = pc.and_(pc.is_valid(table.column("iv")), pc.greater(table.column("expiration"), table.column("quote_date")))
    assert pc.all(pc.is_valid(pc.filter(table.column("vega"), has_vol))).as_py()

    before = table
    again = import_files(files[:2], out, FormatSpec("long"), SPX_RATES)  # same files: same store
    assert again.imported == first.imported
    assert Dataset(out).read_chains("SPX").equals(before)
    third = import_files(files[1:3], out, FormatSpec("long"), SPX_RATES)  # one new day appends
    ds = Dataset(out)
    after = ds.read_chains("SPX")
    per_file = {name: r["imported"] for name, r in ds.meta["imports"].items()}
    assert len(per_file) == 3 and after.num_rows == sum(per_file.values())
    assert after.num_rows == first.imported + third.imported - per_file[files[1].name.split(".")[0]]
    assert ds.read_underlying("SPX").num_rows == 3
    assert ds.meta["underlyings"]["SPX"]["rows"] == after.num_rows


def test_spy_2021_recomputed_greeks_match_the_vendor(real_data, tmp_path):
    src = real_data / "spy-2021-selected" / "spy_options_2021.csv"
    out = tmp_path / "spy"
    result = CliRunner().invoke(main, [
        "data", "import", "--format", "long", str(src), "--out", str(out), "--recompute-greeks",
        "--rate", "0.0005", "--dividend-yield", "0.013", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["input_rows"] == 5040 and report["imported"] + report["quarantined"] == 5040
    ours = Dataset(out).read_chains("SPY")
    vendor = pacsv.read_csv(src, convert_options=pacsv.ConvertOptions(
        include_columns=["quotedate", "expiration", "strike", "type", "impliedvol", "delta"],
        column_types={"quotedate": pa.date32(), "expiration": pa.date32()}))
    vendor = vendor.append_column("right", pc.if_else(pc.equal(vendor["type"], "call"), "C", "P"))
    joined = ours.select(["quote_date", "expiration", "strike", "right", "iv", "delta"]).join(
        vendor.rename_columns(["quote_date", "expiration", "strike", "type", "vendor_iv", "vendor_delta", "right"]),
        ["quote_date", "expiration", "strike", "right"])
    assert joined.num_rows == ours.num_rows
    dte = (joined["expiration"].cast(pa.int32()).to_numpy() - joined["quote_date"].cast(pa.int32()).to_numpy())
    vendor_delta = joined["vendor_delta"].to_numpy()
    sel = (np.abs(vendor_delta) >= 0.1) & (np.abs(vendor_delta) <= 0.9) & (dte >= 7) & (dte <= 180)
    assert sel.sum() > 4000
    iv_diff = np.abs(joined["iv"].to_numpy(zero_copy_only=False) - joined["vendor_iv"].to_numpy())[sel]
    delta_diff = np.abs(joined["delta"].to_numpy(zero_copy_only=False) - vendor_delta)[sel]
    assert np.isnan(iv_diff).mean() < 0.01
    assert np.nanmedian(iv_diff) < 0.01  # 1 vol point
    assert np.nanmedian(delta_diff) < 0.03
