import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from backtest.schema import CHAIN_SCHEMA
from backtest.store import Dataset, DatasetWriter, StoreError, chain_arrays


def _chain(day: dt.date, n: int = 4) -> pa.Table:
    strikes = [100.0 + i for i in range(n)]
    rows = {
        "quote_date": [day] * (2 * n),
        "underlying": ["SPY"] * (2 * n),
        "root": ["SPY"] * (2 * n),
        "expiration": [day + dt.timedelta(days=30)] * (2 * n),
        "strike": strikes * 2,
        "right": ["P"] * n + ["C"] * n,
        "style": ["A"] * (2 * n),
        "bid": [1.0] * (2 * n),
        "ask": [1.1] * (2 * n),
        "underlying_price": [101.0] * (2 * n),
        "delta": [0.5] * (2 * n),
    }
    return pa.table(rows)


def test_write_read_round_trip_by_date_range(tmp_path):
    out = tmp_path / "ds"
    days = [dt.date(2020, 12, 30), dt.date(2020, 12, 31), dt.date(2021, 1, 4)]
    with DatasetWriter(out) as w:
        for d in reversed(days):
            w.write_chains("SPY", _chain(d), part=d.isoformat())
    ds = Dataset(out)
    assert ds.underlyings == ["SPY"]
    assert ds.meta["underlyings"]["SPY"] == {"rows": 24, "start": "2020-12-30", "end": "2021-01-04"}
    t = ds.read_chains("SPY", "2020-12-31", "2021-01-04")
    assert t.schema == CHAIN_SCHEMA
    assert sorted(set(t["quote_date"].to_pylist())) == days[1:]
    arr = chain_arrays(t)
    # sorted by (quote_date, expiration, right, strike): calls before puts within a day
    assert np.all(np.diff(arr.quote_date) >= 0)
    assert arr.is_call[:4].all() and not arr.is_call[4:8].any()
    assert np.isnan(arr.iv).all() and (arr.volume == -1).all()


def test_failed_write_leaves_nothing(tmp_path):
    out = tmp_path / "ds"
    with pytest.raises(RuntimeError):
        with DatasetWriter(out) as w:
            w.write_chains("SPY", _chain(dt.date(2021, 1, 4)), part="a")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_refuses_non_empty_output_without_overwrite(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "x").write_text("x")
    with pytest.raises(StoreError, match="not empty"):
        DatasetWriter(out)
    with DatasetWriter(out, overwrite=True) as w:
        w.write_chains("SPY", _chain(dt.date(2021, 1, 4)), part="a")
    assert not (out / "x").exists() and Dataset(out).underlyings == ["SPY"]


def test_missing_required_column_is_named(tmp_path):
    with pytest.raises(ValueError, match="'bid'"):
        with DatasetWriter(tmp_path / "ds") as w:
            w.write_chains("SPY", _chain(dt.date(2021, 1, 4)).drop_columns(["bid"]), part="a")


def test_unknown_underlying_and_not_a_dataset(tmp_path):
    with pytest.raises(StoreError, match="not a dataset"):
        Dataset(tmp_path)
    with DatasetWriter(tmp_path / "ds") as w:
        w.write_chains("SPY", _chain(dt.date(2021, 1, 4)), part="a")
    with pytest.raises(StoreError, match="'QQQ'.*available: SPY"):
        Dataset(tmp_path / "ds").read_chains("QQQ")


def test_letter_codes_read_one_byte_strings_and_fall_back_for_others():
    from backtest.store import letter_codes

    one_byte = pa.chunked_array([pa.array(["C", "P", "X", "C"]), pa.array(["P"])])
    assert letter_codes(one_byte, "PC").tolist() == [1, 0, -1, 1, 0]
    assert letter_codes(one_byte.combine_chunks().slice(1, 3), "PC").tolist() == [0, -1, 1]
    others = pa.array(["C", "call", None, "", "P"])  # longer, null and empty values: Arrow's path
    assert letter_codes(others, "PC").tolist() == [1, -1, -1, -1, 0]
    assert letter_codes(pa.array(["A", "E"]).dictionary_encode(), "AE").tolist() == [0, 1]
    assert letter_codes(pa.array([], pa.string()), "AE").tolist() == []
