"""Dataset validation (DESIGN §3.4): every check on small hand-built chains, row accounting,
atomic quarantine, the CLI, and the defects of the real SPX 2019 sample."""
import datetime as dt
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import backtest.validate as validate_module
from backtest.pricing import bs_greeks
from backtest.schema import CHAIN_SCHEMA, QUARANTINE_SCHEMA
from backtest.store import Dataset, DatasetWriter, sort_chains
from backtest.validate import (
    REASONS,
    static_arbitrage_violations,
    validate_dataset,
    validate_rows,
)
from benchmarks._long_sample import read_long_sample
from discovery.cli import main

MONDAY = dt.date(2021, 1, 4)
FRONT = dt.date(2021, 1, 15)
BACK = dt.date(2021, 2, 19)


def chain(
    day=MONDAY,
    spot=100.0,
    strikes=tuple(np.arange(80.0, 121.0)),
    expirations=(FRONT, BACK),
    vol=0.20,
    root="SPY",
    underlying="SPY",
    half_spread=0.02,
) -> pa.Table:
    """An arbitrage-free chain: Black-Scholes prices at a flat volatility, quoted on a cent tick
    around the model price (far out-of-the-money options get a zero bid)."""
    cols = {k: [] for k in ("expiration", "strike", "right", "price")}
    for exp in expirations:
        t = (exp - day).days / 365.0
        for right in ("C", "P"):
            k = np.asarray(strikes)
            if t > 0:
                price = bs_greeks(right == "C", spot, k, t, 0.0, 0.0, vol).price
            else:  # expiring today: intrinsic value
                price = np.maximum(spot - k, 0.0) if right == "C" else np.maximum(k - spot, 0.0)
            cols["expiration"] += [exp] * len(strikes)
            cols["strike"] += list(strikes)
            cols["right"] += [right] * len(strikes)
            cols["price"] += list(price)
    price = np.asarray(cols["price"])
    n = len(price)
    return pa.table({
        "quote_date": pa.array([day] * n, pa.date32()),
        "underlying": [underlying] * n,
        "root": [root] * n,
        "expiration": pa.array(cols["expiration"], pa.date32()),
        "strike": cols["strike"],
        "right": cols["right"],
        "style": ["A"] * n,
        "bid": np.maximum(np.round(price - half_spread, 2), 0.0),
        "ask": np.round(price + half_spread, 2),
        "last": pa.nulls(n, pa.float64()),
        "iv": [vol] * n,
        "underlying_price": [spot] * n,
    })


def where(table: pa.Table, **match) -> np.ndarray:
    mask = np.ones(table.num_rows, bool)
    for key, value in match.items():
        mask &= np.asarray(table[key].to_pylist(), dtype=object) == value
    return np.flatnonzero(mask)


def set_values(table: pa.Table, rows, **values) -> pa.Table:
    for key, value in values.items():
        col = table[key].to_pylist()
        for r in np.atleast_1d(rows):
            col[r] = value
        table = table.set_column(table.schema.get_field_index(key), key, pa.array(col, table.schema.field(key).type))
    return table


def reasons_of(result) -> dict:
    return dict(zip(result.quarantined["strike"].to_pylist(), result.quarantined["reason"].to_pylist()))


def test_clean_chain_passes_every_check():
    t = chain()
    r = validate_rows(t, source="clean")
    assert r.good.num_rows == t.num_rows and r.quarantined.num_rows == 0
    assert r.counts == dict.fromkeys(REASONS, 0)
    assert r.mid_violations == {"vertical": 0, "butterfly": 0, "calendar": 0, "any": 0}
    assert r.good.schema == CHAIN_SCHEMA and r.quarantined.schema == QUARANTINE_SCHEMA
    # far out-of-the-money puts have no bid and are kept
    assert pc.sum(pc.equal(r.good["bid"], 0.0)).as_py() > 5


@pytest.mark.parametrize(
    "values, reason",
    [
        ({"bid": float("nan")}, "non_finite"),
        ({"ask": float("inf")}, "non_finite"),
        ({"underlying_price": float("nan")}, "non_finite"),
        ({"right": "X"}, "invalid_value"),
        ({"style": "B"}, "invalid_value"),
        ({"bid": -0.05}, "negative_price"),
        ({"last": -1.0}, "negative_price"),
        ({"bid": 9.0, "ask": 8.0}, "crossed_quote"),
        ({"expiration": dt.date(2021, 1, 1)}, "expired"),
        ({"strike": 100.37}, "off_grid_strike"),
        ({"strike": 100.0004}, "off_grid_strike"),
        ({"strike": 2902.0004}, "off_grid_strike"),
    ],
)
def test_each_row_check_quarantines_only_the_bad_row(values, reason):
    t = chain()
    row = where(t, strike=101.0, right="C", expiration=BACK)[0]
    r = validate_rows(set_values(t, row, **values), source="hand")
    assert r.quarantined.num_rows == 1, r.counts
    assert r.quarantined["reason"].to_pylist() == [reason]
    assert r.quarantined["source"].to_pylist() == ["hand"]
    assert r.counts[reason] == 1 and sum(r.counts.values()) == 1


def test_quote_on_a_holiday_is_quarantined():
    t = chain(day=dt.date(2021, 1, 1))  # New Year's Day
    r = validate_rows(pa.concat_tables([t, chain()]), source="x")
    assert r.counts["non_trading_day"] == t.num_rows and r.good.num_rows == t.num_rows


def test_expiring_on_the_quote_date_is_fine():
    r = validate_rows(chain(expirations=(MONDAY, FRONT)), source="x")
    assert r.quarantined.num_rows == 0


def test_duplicate_keeps_the_first_in_input_order():
    t = chain()
    row = where(t, strike=100.0, right="P", expiration=FRONT)[0]
    copy = set_values(t.slice(row, 1), 0, bid=0.5, ask=0.6)
    r = validate_rows(pa.concat_tables([t, copy]), source="x")
    assert r.counts["duplicate_key"] == 1
    assert r.quarantined["bid"].to_pylist() == [0.5]  # the later row goes


def test_spx_and_spxw_share_expirations_without_being_duplicates():
    spx = chain(root="SPX", underlying="SPX", spot=2900.0, strikes=tuple(np.arange(2500.0, 3300.0, 25.0)))
    spxw = chain(root="SPXW", underlying="SPX", spot=2900.0, strikes=tuple(np.arange(2500.0, 3300.0, 25.0)),
                 half_spread=0.1)
    r = validate_rows(pa.concat_tables([spx, spxw]), source="x")
    assert r.quarantined.num_rows == 0, r.counts


def test_irregular_real_grids_are_on_grid():
    spx_strikes = np.unique(np.concatenate([
        np.arange(1000.0, 2000.0, 100.0), np.arange(2000.0, 2600.0, 25.0),
        np.arange(2600.0, 3200.0, 5.0), np.arange(3200.0, 4000.0, 50.0),
    ]))
    spy_strikes = np.unique(np.concatenate([np.arange(300.0, 360.0, 1.0), np.arange(325.0, 335.0, 0.5)]))
    equity_strikes = np.arange(17.5, 80.0, 5.0)  # a 2.5-offset $5 grid
    adjusted = np.round(np.arange(20.0, 80.0, 2.5) + 1.33, 2)  # an adjusted class after a special dividend
    tables = [
        chain(root="SPX", underlying="SPX", spot=2900.0, strikes=tuple(spx_strikes)),
        chain(root="SPY", underlying="SPY", spot=330.0, strikes=tuple(spy_strikes)),
        chain(root="XYZ", underlying="XYZ", spot=45.0, strikes=tuple(equity_strikes)),
        chain(root="XYZ1", underlying="XYZ", spot=45.0, strikes=tuple(adjusted)),
    ]
    r = validate_rows(pa.concat_tables(tables), source="x")
    assert r.counts["off_grid_strike"] == 0, reasons_of(r)


def test_off_grid_strike_on_a_5_point_grid():
    strikes = np.arange(2600.0, 3200.0, 5.0)
    t = chain(root="SPXW", underlying="SPX", spot=2900.0, strikes=tuple(strikes), expirations=(FRONT,))
    row = where(t, strike=2905.0, right="P")[0]
    r = validate_rows(set_values(t, row, strike=2902.0), source="x")
    assert reasons_of(r) == {2902.0: "off_grid_strike"}


def test_tradable_vertical_and_butterfly_are_quarantined_with_all_legs():
    t = chain(expirations=(FRONT,))
    # a 105 call bid above the 104 call ask: buy 104, sell 105 for a credit
    c104 = where(t, strike=104.0, right="C")[0]
    c105 = where(t, strike=105.0, right="C")[0]
    ask104 = t["ask"][c104].as_py()
    t1 = set_values(t, c105, bid=ask104 + 0.05, ask=ask104 + 0.10)
    r = validate_rows(t1, source="x")
    assert r.counts["vertical_arbitrage"] >= 2
    assert {104.0, 105.0} <= set(reasons_of(r))
    # the 95 put body bid above the average of its wings' asks: sell 2, buy 1 + 1 for a credit
    p94, p95, p96 = (where(t, strike=k, right="P")[0] for k in (94.0, 95.0, 96.0))
    wings = 0.5 * (t["ask"][p94].as_py() + t["ask"][p96].as_py())
    t2 = set_values(t, p95, bid=round(wings + 0.05, 2), ask=round(wings + 0.06, 2))
    r = validate_rows(t2, source="x")
    assert reasons_of(r) == dict.fromkeys((94.0, 95.0, 96.0), "butterfly_arbitrage")


def brute_force_tradable_verticals(strike, bid, ask, call):
    flagged = np.zeros(len(strike), bool)
    for i in range(len(strike)):
        for j in range(i + 1, len(strike)):
            width = strike[j] - strike[i]
            if call:
                arb = bid[j] > ask[i] + 1e-9 or bid[i] - ask[j] > width + 1e-9
            else:
                arb = bid[i] > ask[j] + 1e-9 or bid[j] - ask[i] > width + 1e-9
            if arb:
                flagged[[i, j]] = True
    return flagged


def test_tradable_verticals_match_all_pairs_on_random_quotes():
    rng = np.random.default_rng(3)
    for trial in range(40):
        n = int(rng.integers(3, 12))
        strike = np.sort(rng.choice(np.arange(90.0, 110.0), n, replace=False))
        call = bool(trial % 2)
        fair = np.maximum(100.0 - strike, 0) + 2 if call else np.maximum(strike - 100.0, 0) + 2
        bid = np.round(np.maximum(fair + rng.normal(0, 1.5, n) - 0.5, 0), 2)
        ask = np.round(bid + rng.uniform(0.05, 2.0, n), 2)
        t = pa.table({
            "quote_date": pa.array([MONDAY] * n, pa.date32()), "underlying": ["X"] * n, "root": ["X"] * n,
            "expiration": pa.array([FRONT] * n, pa.date32()), "strike": strike,
            "right": ["C" if call else "P"] * n, "style": ["A"] * n, "bid": bid, "ask": ask,
            "underlying_price": [100.0] * n,
        })
        flags = static_arbitrage_violations(t)
        np.testing.assert_array_equal(flags.tradable["vertical"], brute_force_tradable_verticals(strike, bid, ask, call))


def test_non_adjacent_tradable_vertical():
    t = pa.table({
        "quote_date": pa.array([MONDAY] * 3, pa.date32()), "underlying": ["X"] * 3, "root": ["X"] * 3,
        "expiration": pa.array([FRONT] * 3, pa.date32()), "strike": [100.0, 101.0, 102.0],
        "right": ["C"] * 3, "style": ["A"] * 3, "bid": [4.9, 4.0, 5.5], "ask": [5.0, 6.0, 5.6],
        "underlying_price": [100.0] * 3,
    })
    r = validate_rows(t, source="x")
    assert reasons_of(r) == {100.0: "vertical_arbitrage", 102.0: "vertical_arbitrage"}


def test_tradable_american_calendar_is_quarantined_european_is_not():
    one_strike = (100.0,)  # no vertical or butterfly to trip first
    t = pa.concat_tables([chain(expirations=(FRONT,), strikes=one_strike), chain(expirations=(BACK,), strikes=one_strike)])
    front = where(t, strike=100.0, right="C", expiration=FRONT)[0]
    back = where(t, strike=100.0, right="C", expiration=BACK)[0]
    t = set_values(t, front, bid=t["ask"][back].as_py() + 0.10, ask=t["ask"][back].as_py() + 0.20)
    r = validate_rows(t, source="x")
    assert r.counts["calendar_arbitrage"] == 2
    assert sorted(r.quarantined["expiration"].to_pylist()) == [FRONT, BACK]
    european = t.set_column(t.schema.get_field_index("style"), "style", pa.array(["E"] * t.num_rows))
    assert not static_arbitrage_violations(european).tradable["calendar"].any()
    assert validate_rows(european, source="x").quarantined.num_rows == 0


def test_mid_violation_inside_the_spread_is_counted_not_quarantined():
    t = chain(expirations=(FRONT,), half_spread=0.5)
    p95 = where(t, strike=95.0, right="P")[0]
    bid, ask = t["bid"][p95].as_py(), t["ask"][p95].as_py()
    r = validate_rows(set_values(t, p95, bid=bid + 0.3, ask=ask + 0.3), source="x")
    assert r.quarantined.num_rows == 0
    assert r.mid_violations["butterfly"] == 3
    flags = static_arbitrage_violations(set_values(t, p95, bid=bid + 0.3, ask=ask + 0.3))
    assert flags.mid["butterfly"].sum() == 3 and not flags.tradable["butterfly"].any()
    assert flags.counts()["mid_any"] == int(flags.mid_any.sum()) >= 3


def test_calendar_in_total_variance_counted():
    # front total variance above the back's; European (SPX-like), so counted, not quarantined
    front = chain(expirations=(FRONT,), vol=0.40, root="SPX", underlying="SPX")
    back = chain(expirations=(BACK,), vol=0.15, root="SPX", underlying="SPX")
    front, back = (x.set_column(x.schema.get_field_index("style"), "style", pa.array(["E"] * x.num_rows))
                   for x in (front, back))
    r = validate_rows(pa.concat_tables([front, back]), source="x")
    otm_front = np.sum([(s >= 100) if c == "C" else (s <= 100) for s, c in
                        zip(front["strike"].to_pylist(), front["right"].to_pylist())])
    bid_positive = pc.sum(pc.greater(front["bid"], 0)).as_py()
    assert 0 < r.mid_violations["calendar"] <= min(otm_front, bid_positive)
    assert r.quarantined.num_rows == 0
    ok = validate_rows(pa.concat_tables([chain(expirations=(FRONT,)), chain(expirations=(BACK,))]), source="x")
    assert ok.mid_violations["calendar"] == 0


def test_stale_underlying_needs_the_chain_to_move():
    day1, day2 = dt.date(2021, 1, 4), dt.date(2021, 1, 5)
    moved = chain(day=day2, spot=103.0)
    stale = set_values(moved, np.arange(moved.num_rows), underlying_price=100.0)
    r = validate_rows(pa.concat_tables([chain(day=day1), stale]), source="x")
    assert r.counts["stale_underlying"] == stale.num_rows
    # an underlying that really closed unchanged: the chain did not move either
    r = validate_rows(pa.concat_tables([chain(day=day1), chain(day=day2)]), source="x")
    assert r.counts["stale_underlying"] == 0
    # across calls: the last day of one call is the previous day of the next
    first = validate_rows(chain(day=day1), source="a")
    assert first.last_days["SPY"].underlying_price == 100.0
    assert abs(first.last_days["SPY"].parity_spot - 100.0) < 0.05
    r = validate_rows(stale, source="b", previous_days=first.last_days)
    assert r.counts["stale_underlying"] == stale.num_rows
    assert validate_rows(stale, source="b").counts["stale_underlying"] == 0


def test_stale_price_stuck_for_days_while_the_market_creeps():
    # each day moves 0.15% (below the 0.2% threshold), the price sticks for two days: the second
    # stuck day has drifted 0.30% from the day the price was set
    days = [dt.date(2021, 1, 4), dt.date(2021, 1, 5), dt.date(2021, 1, 6)]
    spots = [100.0, 100.15, 100.30]
    tables = [chain(day=d, spot=s) for d, s in zip(days, spots)]
    tables = [tables[0]] + [set_values(t, np.arange(t.num_rows), underlying_price=100.0) for t in tables[1:]]
    r = validate_rows(pa.concat_tables(tables), source="x")
    assert r.counts["stale_underlying"] == tables[2].num_rows
    assert set(r.quarantined["quote_date"].to_pylist()) == {days[2]}
    assert r.last_days["SPY"].underlying_price == 100.0 and abs(r.last_days["SPY"].parity_spot - 100.0) < 0.05


def test_underlying_price_outside_the_bar():
    bars = pa.table({"date": pa.array([MONDAY], pa.date32()), "low": [99.0], "high": [101.0], "close": [100.5]})
    t = chain()
    assert validate_rows(t, source="x", bars={"SPY": bars}).counts["underlying_mismatch"] == 0
    off = pa.table({"date": pa.array([MONDAY], pa.date32()), "low": [110.0], "high": [112.0], "close": [111.0]})
    assert validate_rows(t, source="x", bars={"SPY": off}).counts["underlying_mismatch"] == t.num_rows


def test_row_accounting_is_exact_under_random_defects():
    rng = np.random.default_rng(7)
    base = pa.concat_tables([chain(), chain(day=dt.date(2021, 1, 5), spot=101.0)])
    n = base.num_rows
    bid = base["bid"].to_numpy().copy()
    ask = base["ask"].to_numpy().copy()
    bid[rng.random(n) < 0.05] = np.nan
    swap = rng.random(n) < 0.05
    bid[swap], ask[swap] = ask[swap] + 0.05, bid[swap]
    ask[rng.random(n) < 0.05] *= 3
    t = base.set_column(base.schema.get_field_index("bid"), "bid", pa.array(bid))
    t = t.set_column(t.schema.get_field_index("ask"), "ask", pa.array(ask))
    t = pa.concat_tables([t, t.slice(0, 50)])  # duplicates
    r = validate_rows(t, source="random")
    assert r.good.num_rows + r.quarantined.num_rows == t.num_rows
    assert sum(r.counts.values()) == r.quarantined.num_rows
    assert r.counts["duplicate_key"] >= 40 and r.counts["crossed_quote"] > 0 and r.counts["non_finite"] > 0
    together = pa.concat_tables([r.good, r.quarantined.select(CHAIN_SCHEMA.names)])
    key = ["quote_date", "root", "expiration", "right", "strike", "bid", "ask"]
    assert sorted(map(str, together.select(key).to_pylist())) == sorted(map(str, t.select(key).to_pylist()))


def test_counts_agree_with_the_pandas_reference_on_noisy_quotes():
    """The benchmark's plain-pandas implementation of the same checks is an independent oracle."""
    from benchmarks.validate import _ours_as_counts, _pandas_checks

    rng = np.random.default_rng(1)
    t = pa.concat_tables([chain(), chain(day=dt.date(2021, 1, 5), spot=101.0)])
    noise = rng.normal(0, 0.3, t.num_rows)
    bid = np.maximum(np.round(t["bid"].to_numpy() + noise, 2), 0)
    ask = np.round(np.maximum(t["ask"].to_numpy() + noise, bid), 2)
    t = set_values(t, [0, 1], strike=80.5)  # off the $1 grid, and then a duplicate
    t = t.set_column(t.schema.get_field_index("bid"), "bid", pa.array(bid))
    t = t.set_column(t.schema.get_field_index("ask"), "ask", pa.array(ask))
    ours = _ours_as_counts(validate_rows(t, source="x"))
    reference = {k: v for k, v in _pandas_checks(t.to_pandas()).items() if v}
    assert {k: v for k, v in ours.items() if v} == reference
    assert ours["vertical_arbitrage"] > 50 and ours["butterfly_arbitrage"] > 10 and ours["off_grid_strike"] == 1
    assert ours["duplicate_key"] == 1


def test_bad_input_table_is_a_user_error():
    with pytest.raises(ValueError, match="myfile.csv: missing required column 'bid'"):
        validate_rows(chain().drop_columns(["bid"]), source="myfile.csv")


# --------------------------------------------------------------------------- datasets


def write_dataset(path, parts: dict[str, pa.Table]):
    with DatasetWriter(path) as w:
        for name, table in parts.items():
            w.write_chains("SPY", table, part=name)
    return path


def snapshot(path) -> dict[str, bytes]:
    return {
        os.path.relpath(os.path.join(d, f), path): open(os.path.join(d, f), "rb").read()
        for d, _, files in os.walk(path) for f in files
    }


def dirty_dataset(tmp_path):
    day1 = chain(day=dt.date(2021, 1, 4))
    day2 = set_values(chain(day=dt.date(2021, 1, 5)), [3, 4], bid=9.0, ask=8.0)
    holiday = chain(day=dt.date(2021, 1, 1))
    return write_dataset(tmp_path / "ds", {"d1": day1, "d2": day2, "hol": holiday}), day1.num_rows


def test_validate_dataset_quarantines_and_rewrites(tmp_path):
    path, n = dirty_dataset(tmp_path)
    dry = validate_dataset(path, quarantine=False)
    assert dry.usable and dry.rows == 3 * n and dry.quarantined_rows == n + 2
    assert dry.counts["crossed_quote"] == 2 and dry.counts["non_trading_day"] == n
    assert not dry.quarantine_applied and Dataset(path).read_quarantine().num_rows == 0

    report = validate_dataset(path)
    assert report.to_dict()["counts"] == dry.counts and report.quarantine_applied
    ds = Dataset(path)
    assert ds.read_chains("SPY").num_rows == 2 * n - 2
    q = ds.read_quarantine()
    assert sorted(pc.value_counts(q["reason"]).to_pylist(), key=str) == sorted(
        [{"values": "crossed_quote", "counts": 2}, {"values": "non_trading_day", "counts": n}], key=str)
    assert set(q["source"].to_pylist()) == {"chains/underlying=SPY/year=2021/d2.parquet",
                                            "chains/underlying=SPY/year=2021/hol.parquet"}
    assert ds.meta["underlyings"]["SPY"] == {"rows": 2 * n - 2, "start": "2021-01-04", "end": "2021-01-05"}
    assert ds.meta["quarantine"]["rows"] == n + 2
    assert not [f for f in snapshot(path) if f.split(os.sep)[-1].startswith(".")]
    # idempotent: a second run finds nothing new and changes nothing
    before = snapshot(path)
    again = validate_dataset(path)
    assert again.quarantined_rows == 0 and again.usable and snapshot(path) == before


def test_failure_while_checking_leaves_the_dataset_unchanged(tmp_path, monkeypatch):
    path, _ = dirty_dataset(tmp_path)
    before = snapshot(path)
    real = validate_module._classify
    calls = []

    def fail_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(validate_module, "_classify", fail_on_third)
    monkeypatch.setattr(validate_module, "BATCH_ROWS", 1)  # one call per day
    with pytest.raises(RuntimeError, match="disk on fire"):
        validate_dataset(path)
    assert snapshot(path) == before


def test_failure_while_swapping_files_rolls_back(tmp_path, monkeypatch):
    path, _ = dirty_dataset(tmp_path)
    before = snapshot(path)
    real = os.replace
    calls = []

    def fail_on_fifth(src, dst):
        calls.append(1)
        if len(calls) == 5:
            raise OSError("rename failed")
        return real(src, dst)

    monkeypatch.setattr(validate_module.os, "replace", fail_on_fifth)
    with pytest.raises(OSError, match="rename failed"):
        validate_dataset(path)
    monkeypatch.setattr(validate_module.os, "replace", real)
    assert snapshot(path) == before


def test_unusable_datasets_name_file_rows_and_why(tmp_path):
    assert "dataset.json missing" in validate_dataset(tmp_path).messages[0]
    bad_json = tmp_path / "badjson"
    bad_json.mkdir()
    (bad_json / "dataset.json").write_text("{not json")
    assert not validate_dataset(bad_json).usable and "invalid JSON" in validate_dataset(bad_json).messages[0]

    empty = tmp_path / "empty"
    with DatasetWriter(empty):
        pass
    r = validate_dataset(empty)
    assert not r.usable and "no chain files" in r.messages[0]

    all_bad = write_dataset(tmp_path / "allbad", {"hol": chain(day=dt.date(2021, 1, 1))})
    before = snapshot(all_bad)
    r = validate_dataset(all_bad)
    assert not r.usable and "no usable chain rows" in r.messages[-1] and "non_trading_day" in r.messages[-1]
    assert snapshot(all_bad) == before  # an unusable dataset is never modified

    mismatch = write_dataset(tmp_path / "mismatch", {"d1": chain()})
    part = mismatch / "chains" / "underlying=SPY" / "year=2021" / "d1.parquet"
    pq.write_table(pq.read_table(part).drop_columns(["ask"]), part)
    r = validate_dataset(mismatch)
    assert not r.usable and "d1.parquet" in r.messages[0] and "'ask'" in r.messages[0]

    corrupt = write_dataset(tmp_path / "corrupt", {"d1": chain(), "d2": chain(day=dt.date(2021, 1, 5))})
    (corrupt / "chains" / "underlying=SPY" / "year=2021" / "d2.parquet").write_bytes(b"not parquet")
    before = snapshot(corrupt)
    r = validate_dataset(corrupt)
    assert not r.usable and "d2.parquet: cannot read" in r.messages[0]
    assert snapshot(corrupt) == before


def test_cli_exit_codes_and_output(tmp_path):
    path, n = dirty_dataset(tmp_path)
    runner = CliRunner()
    out = runner.invoke(main, ["data", "validate", str(path), "--no-quarantine"])
    assert out.exit_code == 0, out.output
    assert "crossed_quote" in out.output and f"{n + 2:,}" in out.output and "left unchanged" in out.output
    out = runner.invoke(main, ["data", "validate", str(path), "--json"])
    assert out.exit_code == 0 and json.loads(out.stdout)["quarantined_rows"] == n + 2
    out = runner.invoke(main, ["data", "validate", str(tmp_path / "nothing")])
    assert out.exit_code != 0 and "dataset.json missing" in out.output


# --------------------------------------------------------------------------- real data


SPX_DAYS = ("20190524", "20190527", "20190528", "20190703", "20190704", "20190705")


@pytest.fixture(scope="module")
def spx_days(real_data):
    folder = real_data / "spx-2019q2-cboe-delayed"
    return {d: read_long_sample(folder / f"SPX_{d}.csv.gz") for d in SPX_DAYS}


def test_real_spx_sample_defects(spx_days):
    rows = sum(t.num_rows for t in spx_days.values())
    r = validate_rows(pa.concat_tables(spx_days.values()), source="spx")
    assert r.rows == rows
    # the two holiday files (Memorial Day, Independence Day) are copies of the day before
    holidays = spx_days["20190527"].num_rows + spx_days["20190704"].num_rows
    assert r.counts["expired"] + r.counts["non_trading_day"] == holidays
    # the 2019-07-04 copy still lists the SPXW expiring 2019-07-03
    assert r.counts["expired"] == 316
    # Cboe quotes: no crossed, negative, duplicate, off-grid or tradable-arbitrage rows
    for reason in ("crossed_quote", "negative_price", "duplicate_key", "off_grid_strike",
                   "vertical_arbitrage", "butterfly_arbitrage", "stale_underlying"):
        assert r.counts[reason] == 0, reason
    # mid prices break static arbitrage on a sizeable share (deep in-the-money quotes are wide)
    # but far from all rows; calendars in total variance rarely
    share = r.mid_violations["any"] / r.good.num_rows
    assert 0.05 < share < 0.15, share  # 8.4% on these days
    assert 0 < r.mid_violations["calendar"] < 0.005 * r.good.num_rows  # 104 rows
    # the stats API sees the same rows
    flags = static_arbitrage_violations(r.good)
    assert flags.counts()["mid_any"] == r.mid_violations["any"] and not any(flags.counts()[f"tradable_{c}"]
                                                                               for c in ("vertical", "butterfly"))
    # zero bids are common far from the money and kept
    assert pc.sum(pc.equal(r.good["bid"], 0.0)).as_py() > 1000


def test_real_spx_stale_underlying(spx_days):
    # a vendor snapshot whose underlying price was not refreshed: the quotes of 2019-05-28
    # (SPX closed near 2814) carrying 2019-05-24's price 2826.06; the chain implies the move
    day1, day2 = spx_days["20190524"], spx_days["20190528"]
    stale = day2.set_column(day2.schema.get_field_index("underlying_price"), "underlying_price",
                            pa.array(np.full(day2.num_rows, 2826.06)))
    first = validate_rows(day1, source="a")
    assert abs(first.last_days["SPX"].parity_spot / 2826.06 - 1) < 0.002
    r = validate_rows(stale, source="b", previous_days=first.last_days)
    assert r.counts["stale_underlying"] == day2.num_rows
    assert validate_rows(day2, source="b", previous_days=first.last_days).counts["stale_underlying"] == 0


def test_real_spy_sample_defects(real_data):
    t = read_long_sample(real_data / "spy-2021-selected" / "spy_options_2021.csv")
    r = validate_rows(t, source="spy")
    assert r.rows == t.num_rows == 5040
    q = r.quarantined
    # quadruple witching, 2021-09-17: the vendor's snapshot has 17 crossed quotes
    crossed = q.filter(pc.equal(q["reason"], "crossed_quote"))
    assert crossed.num_rows == 17 and set(crossed["quote_date"].to_pylist()) == {dt.date(2021, 9, 17)}
    # 2021-02-19: the 370/371/374 put butterfly sells for half a cent more than its wings cost
    fly = q.filter(pc.equal(q["reason"], "butterfly_arbitrage"))
    assert sorted(fly["strike"].to_pylist()) == [370.0, 371.0, 374.0]
    assert r.quarantined.num_rows == 20 and r.counts["calendar_arbitrage"] == 0


def test_empty_table():
    r = validate_rows(CHAIN_SCHEMA.empty_table(), source="empty")
    assert r.rows == 0 and sum(r.counts.values()) == 0 and r.last_days == {}


def test_files_sharing_a_day_are_checked_together(tmp_path):
    # two parts of one day (e.g. two vendor files): the second copy of each contract is a duplicate
    day = chain()
    path = write_dataset(tmp_path / "ds", {"a": day, "b": day, "c": chain(day=dt.date(2021, 1, 5))})
    r = validate_dataset(path)
    assert r.counts["duplicate_key"] == day.num_rows and r.good_rows == 2 * day.num_rows
    assert Dataset(path).read_chains("SPY").num_rows == 2 * day.num_rows


def test_dataset_bars_and_several_underlyings(tmp_path):
    path = tmp_path / "ds"
    bars = pa.table({"date": pa.array([MONDAY], pa.date32()), "low": [110.0], "high": [112.0], "close": [111.0]})
    with DatasetWriter(path) as w:
        w.write_chains("SPY", chain(), part="spy")
        w.write_chains("QQQ", chain(underlying="QQQ", root="QQQ"), part="qqq")
        w.write_underlying("SPY", bars)  # SPY's chain says 100, its bar 110-112
    r = validate_dataset(path, quarantine=False)
    n = chain().num_rows
    assert r.by_underlying["SPY"] == {"rows": n, "good_rows": 0, "underlying_mismatch": n}
    assert r.by_underlying["QQQ"] == {"rows": n, "good_rows": n}
    assert r.usable and r.messages == (f"SPY: all {n:,} chain rows fail validation",)


def test_store_order_gives_the_good_rows_as_sort_chains_orders_them():
    spx = chain(root="SPX", underlying="SPX", spot=2900.0, strikes=tuple(np.arange(2500.0, 3300.0, 25.0)))
    spxw = chain(root="SPXW", underlying="SPX", spot=2900.0, strikes=tuple(np.arange(2500.0, 3300.0, 25.0)),
                 half_spread=0.1)
    mixed = pa.concat_tables([spxw, spx]).take(np.random.default_rng(3).permutation(spx.num_rows * 2))
    mixed = set_values(mixed, [0, 5], bid=-1.0)  # two quarantined rows
    plain = validate_rows(mixed, source="x")
    ordered = validate_rows(mixed, source="x", store_order=True)
    assert ordered.quarantined.equals(plain.quarantined) and ordered.counts == plain.counts
    assert not ordered.good.equals(plain.good)  # input order is not store order here
    assert ordered.good.equals(sort_chains(plain.good))  # ties (SPX and SPXW) in input order
    assert np.array_equal(ordered.good_mask, plain.good_mask)
    assert np.flatnonzero(~plain.good_mask).tolist() == [0, 5]
    for rows in (mixed.slice(0, 0), mixed.slice(3, 1)):
        assert validate_rows(rows, source="x", store_order=True).good.equals(validate_rows(rows, source="x").good)


@pytest.mark.parametrize("runs", [1, 7, 300])  # 300 ascending runs: past the merge, a sort
def test_distinct_strikes_of_a_block_from_its_ascending_runs(runs):
    from backtest.validate_nb import _distinct

    rng = np.random.default_rng(runs)
    milli = np.concatenate([np.sort(rng.choice(np.arange(1, 400) * 500, rng.integers(1, 60), replace=False))
                            for _ in range(runs)]).astype(np.int64)
    ok = rng.random(len(milli)) < 0.9
    lo, hi = 3, len(milli) - 2
    scratch = [np.empty(len(milli), np.int64) for _ in range(2)]
    expected = np.unique(milli[lo:hi][ok[lo:hi]])
    assert np.array_equal(_distinct(milli, ok, lo, hi, *scratch), expected)
