"""One fixture per vendor format, written from its documented column layout with its quirks."""
import gzip
import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from backtest.errors import UserError
from backtest.importers import FormatSpec
from backtest.importers.generic import Mapping
from backtest.importers.pipeline import import_files
from backtest.importers.rates import RateSchedule
from backtest.schema import CHAIN_SCHEMA
from backtest.store import Dataset, sort_chains

RATES = RateSchedule.constant(0.02, 0.01)

LONG = """underlying,underlying_last,exchange,optionroot,type,expiration,quotedate,strike,last,net,bid,ask,volume,openinterest,impliedvol,delta,gamma
SPX,2919.04,CBOE,SPXW190517C02900000,call,05/17/2019,04/25/2019,2900.0,60.0,0.0,58.6,59.9,10,3675,0.14,0.55,0.0027
SPX,2919.04,CBOE,SPX190517C02900000,call,05/17/2019,04/25/2019,2900.0,61.0,0.0,59.0,60.4,5,100,0.141,0.55,0.0027
SPX,2919.04,CBOE,SPXW190517P02900000,put,05/17/2019,04/25/2019,2900.0,40.0,0.0,39.1,40.3,7,800,0.15,-0.45,0.0027
"""

OPTIONSDX = (
    "[QUOTE_UNIXTIME], [QUOTE_READTIME], [QUOTE_DATE], [QUOTE_TIME_HOURS], [UNDERLYING_LAST], [EXPIRE_DATE], "
    "[EXPIRE_UNIX], [DTE], [C_DELTA], [C_GAMMA], [C_VEGA], [C_THETA], [C_RHO], [C_IV], [C_VOLUME], [C_LAST], "
    "[C_SIZE], [C_BID], [C_ASK], [STRIKE], [P_BID], [P_ASK], [P_SIZE], [P_LAST], [P_DELTA], [P_GAMMA], [P_VEGA], "
    "[P_THETA], [P_RHO], [P_IV], [P_VOLUME], [STRIKE_DISTANCE], [STRIKE_DISTANCE_PCT]\n"
    '1609794000, 2021-01-04 16:00, 2021-01-04, 16.000000, 3700.65, 2021-01-15, 1610744400, 11.000000, 0.52, '
    '0.0015, 2.1, -1.2, 0.5, 0.21, 120, 55.0, "12 x 14", 54.1, 55.3, 3700.0, 50.1, 51.2, "7 x 9", 50.0, -0.48, '
    '0.0015, 2.1, -1.1, -0.6, 0.22, 300, 0.6, 0.0\n'
    '1609794000, 2021-01-04 16:00, 2021-01-04, 16.000000, 3700.65, 2021-01-15, 1610744400, 11.000000, 0.40, '
    '0.0014, 2.0, -1.1, 0.4, , , , "0 x 0", 30.1, 31.3, 3750.0, 76.1, 77.2, "1 x 1", , -0.6, 0.0014, 2.0, -1.0, '
    '-0.7, 0.23, , 49.4, 0.01\n'
)

CBOE_HEADER = (
    "underlying_symbol,quote_date,root,expiration,strike,option_type,open,high,low,close,trade_volume,"
    "bid_size_1545,bid_1545,ask_size_1545,ask_1545,underlying_bid_1545,underlying_ask_1545,"
    "implied_underlying_price_1545,active_underlying_price_1545,implied_volatility_1545,delta_1545,gamma_1545,"
    "theta_1545,vega_1545,rho_1545,bid_size_eod,bid_eod,ask_size_eod,ask_eod,underlying_bid_eod,"
    "underlying_ask_eod,vwap,open_interest,delivery_code\n"
)
CBOE = CBOE_HEADER + (
    "^SPX,2021-01-04,SPXW,2021-02-19,3700,C,80,90,70,85,321,10,84.0,12,85.0,3701.0,3703.0,3702.5,3702.0,0.21,"
    "0.53,0.0012,-1.01,4.2,2.1,20,80.0,25,81.2,3690.0,3692.0,84.7,1500,\n"
    "^SPX,2021-01-04,SPX,2021-02-19,3700,P,60,70,50,65,123,10,64.0,12,65.0,3701.0,3703.0,3702.5,3702.0,0.23,"
    "-0.47,0.0012,-0.9,4.2,-2.0,20,66.0,25,67.0,3690.0,3692.0,64.5,2500,\n"
)

IVOL_HEADER = ("symbol,exchange,date,adjusted close,option symbol,expiration,strike,call/put,style,ask,bid,"
               "mean price,iv,volume,open interest,stock price for iv,*,delta,vega,gamma,theta,rho\n")
IVOL = IVOL_HEADER + (
    "SPY,NYSEArca,2021-01-04,368.79,SPY   210219C00370000,2021-02-19,370,C,A,9.6,9.5,9.55,0.2101,1200,5000,"
    "368.79,*,0.49,0.46,0.02,-0.09,0.2\n"
    "SPY,NYSEArca,2021-01-04,368.79,SPY   210219P00360000,2021-02-19,360,P,A,7.1,7.0,7.05,-1,800,4000,368.79,,"
    "-0.33,0.41,0.017,-0.08,-0.17\n"
)


def _write(path, text):
    path.write_text(text)
    return path


def _import(paths, out, spec, **kw):
    return import_files(paths, out, spec, RATES, **kw)


def _rows(out):
    ds = Dataset(out)
    return pa.concat_tables([ds.read_chains(u) for u in ds.underlyings]).to_pylist()


def test_long_format_keeps_trading_class_and_reads_zip_and_gzip(tmp_path):
    plain = _write(tmp_path / "spx_a.csv", LONG)
    with zipfile.ZipFile(tmp_path / "spx_b.zip", "w") as z:
        z.writestr("spx_b.csv", LONG.replace("04/25/2019", "04/26/2019"))
    (tmp_path / "spx_c.csv.gz").write_bytes(gzip.compress(LONG.replace("04/25/2019", "04/29/2019").encode()))
    summary = _import([plain, tmp_path / "spx_b.zip", tmp_path / "spx_c.csv.gz"], tmp_path / "ds", FormatSpec("long"))
    assert (summary.input_rows, summary.imported) == (9, 9)
    rows = _rows(tmp_path / "ds")
    first = [r for r in rows if str(r["quote_date"]) == "2019-04-25"]
    assert sorted((r["root"], r["right"]) for r in first) == [("SPX", "C"), ("SPXW", "C"), ("SPXW", "P")]
    assert {r["style"] for r in rows} == {"E"}
    call = next(r for r in first if r["root"] == "SPXW" and r["right"] == "C")
    assert (call["bid"], call["ask"], call["iv"], call["open_interest"], call["underlying_price"]) == (58.6, 59.9, 0.14, 3675, 2919.04)
    assert call["theta"] < 0 and call["vega"] > 0  # missing in the format: computed by the engine
    bars = Dataset(tmp_path / "ds").read_underlying("SPX")
    assert bars.column("close").to_pylist() == [2919.04] * 3 and bars.num_rows == 3


def test_optionsdx_wide_rows_become_a_call_and_a_put(tmp_path):
    path = _write(tmp_path / "spx_eod_202101.txt", OPTIONSDX)
    summary = _import([path], tmp_path / "ds", FormatSpec("optionsdx"))
    assert (summary.input_records, summary.input_rows, summary.imported) == (2, 4, 4)
    rows = _rows(tmp_path / "ds")
    assert {(r["strike"], r["right"]) for r in rows} == {(3700, "C"), (3700, "P"), (3750, "C"), (3750, "P")}
    c3700 = next(r for r in rows if r["strike"] == 3700 and r["right"] == "C")
    p3700 = next(r for r in rows if r["strike"] == 3700 and r["right"] == "P")
    assert (c3700["bid"], c3700["ask"], c3700["iv"], c3700["volume"], c3700["last"]) == (54.1, 55.3, 0.21, 120, 55.0)
    assert (p3700["bid"], p3700["ask"], p3700["iv"], p3700["delta"]) == (50.1, 51.2, 0.22, -0.48)
    assert all(r["open_interest"] is None for r in rows)  # not in the format
    assert {r["underlying"] for r in rows} == {"SPX"} and {r["underlying_price"] for r in rows} == {3700.65}
    c3750 = next(r for r in rows if r["strike"] == 3750 and r["right"] == "C")
    assert c3750["iv"] is not None and c3750["last"] is None  # empty vendor IV: the engine's


def test_cboe_uses_1545_quotes_by_default_and_eod_on_request(tmp_path):
    path = _write(tmp_path / "UnderlyingOptionsEODCalcs_2021-01-04.csv", CBOE)
    _import([path], tmp_path / "a", FormatSpec("cboe"))
    rows = {r["root"]: r for r in _rows(tmp_path / "a")}
    assert set(rows) == {"SPX", "SPXW"} and {r["underlying"] for r in rows.values()} == {"SPX"}
    spxw = rows["SPXW"]
    assert (spxw["bid"], spxw["ask"], spxw["iv"], spxw["delta"], spxw["underlying_price"]) == (84.0, 85.0, 0.21, 0.53, 3702.0)
    assert (spxw["last"], spxw["volume"], spxw["open_interest"], spxw["style"]) == (85.0, 321, 1500, "E")
    _import([path], tmp_path / "b", FormatSpec("cboe", cboe_quotes="eod"))
    eod = {r["root"]: r for r in _rows(tmp_path / "b")}["SPXW"]
    assert (eod["bid"], eod["ask"], eod["underlying_price"]) == (80.0, 81.2, 3691.0)
    assert eod["iv"] != 0.21 and 0.05 < eod["iv"] < 0.5  # the engine's, at the EOD quotes


def test_ivolatility_minus_one_iv_means_missing(tmp_path):
    path = _write(tmp_path / "spy_rawiv_20210104.csv", IVOL)
    _import([path], tmp_path / "ds", FormatSpec("ivolatility"))
    rows = {r["right"]: r for r in _rows(tmp_path / "ds")}
    assert rows["C"]["iv"] == 0.2101 and rows["C"]["delta"] == 0.49 and rows["C"]["style"] == "A"
    put = rows["P"]
    assert put["root"] == "SPY" and put["underlying_price"] == 368.79
    assert put["iv"] != -1 and 0.05 < put["iv"] < 1.0  # computed from the mid
    assert -0.5 < put["delta"] < -0.2 and put["delta"] != -0.33  # vendor greeks of a -1 IV row are dropped


@pytest.mark.parametrize("file_type", ["csv", "parquet"])
def test_generic_mapping_csv_and_parquet(tmp_path, file_type):
    table = pa.table({
        "Date": ["2021-01-04", "2021-01-04"], "Expiry": ["2021-02-19", "2021-02-19"], "K": [370.0, 360.0],
        "CP": ["Call", "Put"], "B": [9.5, 7.0], "A": [9.6, 7.1], "Spot": [368.79, 368.79],
        "IVpct": [21.0, 23.0], "Other": ["x", "y"],
    })
    if file_type == "csv":
        import pyarrow.csv as pacsv

        path = tmp_path / "quotes.csv"
        pacsv.write_csv(table, path)
    else:
        path = tmp_path / "quotes.parquet"
        pq.write_table(table, path)
    mapping = tmp_path / "map.yaml"
    mapping.write_text(
        "underlying: spy\niv_scale: 0.01\nrights: {Call: C, Put: P}\n"
        "columns: {quote_date: Date, expiration: Expiry, strike: K, right: CP, bid: B, ask: A,"
        " underlying_price: Spot, iv: IVpct}\n"
    )
    spec = FormatSpec("generic", Mapping.load(mapping).model_dump())
    _import([path], tmp_path / "ds", spec)
    rows = {r["right"]: r for r in _rows(tmp_path / "ds")}
    assert rows["C"]["iv"] == pytest.approx(0.21) and rows["P"]["iv"] == pytest.approx(0.23)
    assert rows["C"]["underlying"] == "SPY" and rows["C"]["style"] == "A" and rows["C"]["strike"] == 370.0


def test_generic_mapping_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("underlying: SPY\ncolumns: {quote_date: D, expiration: E, strike: K, right: R, bid: B, ask: A,"
                   " underlying_price: S, strik: K}\n")
    with pytest.raises(UserError, match=r"columns\.strik: Extra inputs"):
        Mapping.load(bad)
    bad.write_text("columns: {quote_date: D, expiration: E, strike: K, right: R, bid: B, ask: A, underlying_price: S}\n")
    with pytest.raises(UserError, match="give either `underlying"):
        Mapping.load(bad)


def test_vendor_quotes_are_validated_and_counted(tmp_path):
    crossed = LONG.replace("58.6,59.9", "61.0,59.9")  # bid above ask
    path = _write(tmp_path / "spx.csv", crossed)
    summary = _import([path], tmp_path / "ds", FormatSpec("long"))
    assert summary.input_rows == 3 and summary.imported == 2 and summary.quarantined_rows == 1
    q = Dataset(tmp_path / "ds").read_quarantine()
    assert q.num_rows == 1 and q.column("bid").to_pylist() == [61.0]
    assert Dataset(tmp_path / "ds").meta["quarantine"]["rows"] == 1
    assert list(summary.quarantined.values()) == [1]
    assert np.all(pc.equal(q.column("source"), "spx.csv").to_numpy(zero_copy_only=False))


def test_cli_with_worker_processes_and_a_rates_file(tmp_path):
    from click.testing import CliRunner

    from discovery.cli import main

    files = []
    for day in ("04/25/2019", "04/26/2019"):
        f = tmp_path / f"spx_{day[3:5]}.csv"
        f.write_text(LONG.replace("04/25/2019", day))
        files.append(str(f))
    rates = tmp_path / "rates.csv"
    rates.write_text("date,rate,dividend_yield\n2019-04-01,0.02,0.01\n")
    result = CliRunner().invoke(main, ["data", "import", "--format", "long", *files, "--out", str(tmp_path / "p"),
                                       "--workers", "2", "--rates", str(rates), "--json"])
    assert result.exit_code == 0, result.output
    serial = _import([files[0], files[1]], tmp_path / "s", FormatSpec("long"))  # constant 2% / 1%
    assert serial.imported == 6
    assert Dataset(tmp_path / "p").read_chains("SPX").equals(Dataset(tmp_path / "s").read_chains("SPX"))
    assert Dataset(tmp_path / "p").meta["sources"][0]["rates"] == "rates file rates.csv"


def test_roots_from_osi_symbols_are_found_in_the_string_buffers():
    from backtest.importers.common import root_from_osi

    symbols = pa.array(["skip", "SPXW190426C00800000", "SPY   210129P00345000", "spx190426c00800000",
                        " SPXW190426P02900000 ", "VIX", "", None, "SPXW190426C00900000"])
    underlying = pa.array(["SPX"] * len(symbols))
    # a slice: the kernel must honour the array's offset into its buffers
    roots = root_from_osi(symbols.slice(1), underlying.slice(1))
    assert roots.to_pylist() == ["SPXW", "SPY", "SPX", "SPXW", "VIX", "SPX", "SPX", "SPXW"]
    clean = root_from_osi(pa.array(["SPXW190426C00800000", "SPX190426C00800000", "SPXW190426P00800000"]), underlying)
    assert pa.types.is_dictionary(clean.type) and clean.dictionary.to_pylist() == ["SPX", "SPXW"]


def _long_days(*days):
    header, *rows = LONG.splitlines()
    return "\n".join([header] + [r.replace("04/25/2019", d).replace("05/17/2019", "01/15/2021")
                                 .replace("190517", "210115") for d in days for r in rows]) + "\n"


def test_a_file_across_years_is_stored_per_year_in_store_order(tmp_path):
    # days out of order, and the first block (all but the last day) holds days of two years
    path = _write(tmp_path / "spx.csv", _long_days("12/31/2020", "12/30/2020", "01/04/2021", "01/05/2021"))
    summary = _import([path], tmp_path / "ds", FormatSpec("long"))
    assert summary.imported == 12
    parts = sorted((tmp_path / "ds" / "chains" / "underlying=SPX").glob("year=*/spx.parquet"))
    assert [p.parent.name for p in parts] == ["year=2020", "year=2021"]
    for part, days in zip(parts, (["2020-12-30", "2020-12-31"], ["2021-01-04", "2021-01-05"])):
        table = pq.read_table(part)
        assert sorted({str(d) for d in table.column("quote_date").to_pylist()}) == days
        assert table.equals(sort_chains(table))
    bars = Dataset(tmp_path / "ds").read_underlying("SPX")
    assert [str(d) for d in bars.column("date").to_pylist()] == ["2020-12-30", "2020-12-31", "2021-01-04",
                                                                 "2021-01-05"]


def test_part_writer_sorts_a_part_whose_blocks_come_out_of_date_order(tmp_path):
    from backtest.importers.pipeline import _PartWriter

    chains = [pa.Table.from_pylist(_rows_of(tmp_path, day), schema=CHAIN_SCHEMA) for day in ("12/31/2020", "12/30/2020")]
    writer = _PartWriter(tmp_path / "staging", "p")
    for chain in chains:
        writer.write_chain(sort_chains(chain))
    writer.close()
    table = pq.read_table(tmp_path / "staging" / "chains" / "underlying=SPX" / "year=2020" / "p.parquet")
    assert table.num_rows == 6 and table.equals(sort_chains(table))
    assert not pa.concat_tables([sort_chains(c) for c in chains]).equals(sort_chains(table))


def _rows_of(tmp_path, day):
    out = tmp_path / f"one-{day.replace('/', '')}"
    _import([_write(tmp_path / f"{out.name}.csv", _long_days(day))], out, FormatSpec("long"))
    return _rows(out)
