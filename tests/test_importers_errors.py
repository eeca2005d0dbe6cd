"""Bad input: a clear error naming file, line and expectation; nothing of a failed import kept."""
import gzip
import hashlib

import numpy as np
import pytest

from backtest.errors import UserError
from backtest.importers import FormatSpec
from backtest.importers.pipeline import import_files
from backtest.importers.rates import RateSchedule
from backtest.importers.source import ImportFileError
from tests.test_importers_formats import LONG

RATES = RateSchedule.constant(0.02, 0.01)
HEADER, *ROWS = LONG.strip().split("\n")
MORE_ROWS = [r.replace("2900.0", "2950.0").replace("02900000", "02950000") for r in ROWS]


def _snapshot(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()} if root.exists() else None


@pytest.fixture()
def store(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text(LONG)
    out = tmp_path / "ds"
    import_files([good], out, FormatSpec("long"), RATES)
    return out


def _body(*rows):
    return "\n".join([HEADER, *rows]) + "\n"


CASES = {
    "unknown column": (
        "\n".join([HEADER + ",mystery", *(r + ",1" for r in ROWS)]) + "\n",
        r"bad\.csv line 1: unknown column\(s\) 'mystery' for --format long \(expected: underlying, ",
    ),
    "missing column": (
        "\n".join([HEADER.replace(",bid,", ","), *(r.replace(",58.6,", ",").replace(",59.0,", ",")
                                                   .replace(",39.1,", ",") for r in ROWS)]) + "\n",
        r"bad\.csv line 1: missing column\(s\) 'bid' for --format long",
    ),
    "underlying changes": (
        _body(*ROWS, MORE_ROWS[0].replace("SPX,", "SPY,", 1)),
        r"bad\.csv line 5: underlying changes from 'SPX' to 'SPY'; expected one underlying per file",
    ),
    "mixed date formats": (
        _body(*ROWS, MORE_ROWS[0].replace("04/25/2019", "2019-04-25")),
        r"bad\.csv line 5: column 'quotedate': '2019-04-25' is not a date in this file's format %m/%d/%Y",
    ),
    "non-numeric strike": (
        _body(*ROWS, MORE_ROWS[0].replace(",2950.0,", ",29S0,")),
        r"bad\.csv line 5: column 'strike': '29S0' is not a number",
    ),
    "bad right": (
        _body(*ROWS, MORE_ROWS[0].replace(",call,", ",straddle,")),
        r"bad\.csv line 5: column 'type': 'straddle' is not an option right \(expected call/put or C/P\)",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_fails_clearly_and_leaves_the_store_as_it_was(tmp_path, store, case):
    text, message = CASES[case]
    other = tmp_path / "other.csv"  # a good file imported in the same run: not kept either
    other.write_text(_body(*MORE_ROWS))
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    before = _snapshot(store)
    with pytest.raises(ImportFileError, match=message):
        import_files([other, bad], store, FormatSpec("long"), RATES)
    assert _snapshot(store) == before
    assert not [p for p in store.parent.iterdir() if p.name.startswith(".")]
    # into a new dataset: nothing is created at all
    with pytest.raises(ImportFileError, match=message):
        import_files([other, bad], tmp_path / "new", FormatSpec("long"), RATES)
    assert not (tmp_path / "new").exists()


def test_wrong_format_says_so(tmp_path, store):
    bad = tmp_path / "bad.csv"
    bad.write_text(LONG)
    before = _snapshot(store)
    with pytest.raises(ImportFileError, match=r"bad\.csv line 1: missing column\(s\) 'underlying_symbol', .*"
                                              r"is --format right\?"):
        import_files([bad], store, FormatSpec("cboe"), RATES)
    assert _snapshot(store) == before


def test_corrupt_gzip_is_reported(tmp_path, store):
    rows = [r.replace("2900.0", f"{2000 + i}.0") for i in range(3000) for r in ROWS[:1]]
    data = gzip.compress(_body(*rows).encode())
    (tmp_path / "trunc.csv.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.csv.gz").write_bytes(b"this is not gzip data" * 10)
    before = _snapshot(store)
    for name in ("trunc.csv.gz", "junk.csv.gz"):
        with pytest.raises(ImportFileError, match=rf"{name}.*(corrupt or truncated compressed data|cannot read)"):
            import_files([tmp_path / name], store, FormatSpec("long"), RATES)
    assert _snapshot(store) == before


def test_cli_reports_errors_in_one_line(tmp_path):
    from click.testing import CliRunner

    from discovery.cli import main

    bad = tmp_path / "bad.csv"
    bad.write_text(CASES["non-numeric strike"][0])
    result = CliRunner().invoke(main, ["data", "import", "--format", "long", str(bad), "--out", str(tmp_path / "ds")])
    assert result.exit_code != 0
    assert "line 5: column 'strike': '29S0' is not a number" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(main, ["data", "import", "--format", "bogus", str(bad), "--out", str(tmp_path / "ds")])
    assert result.exit_code == 2 and "'bogus' is not one of" in result.output


def test_rates_file_is_checked(tmp_path):
    f = tmp_path / "rates.csv"
    f.write_text("date,rate\n2019-01-02,2.4\n")
    with pytest.raises(UserError, match=r"rates\.csv line 2: rate 2\.4 is not a decimal annual rate"):
        RateSchedule.from_file(f)
    f.write_text("date,rate,dividend_yield\n2019-05-01,0.024,0.018\n2019-01-02,0.025,0.019\n")
    schedule = RateSchedule.from_file(f)  # rows in any order; each holds until the next date
    days = np.array(["2019-05-02", "2019-04-30", "2019-05-01"], dtype="datetime64[D]").astype(int)
    rate, div = schedule.lookup(days)
    assert list(rate) == [0.024, 0.025, 0.024] and list(div) == [0.018, 0.019, 0.018]
    with pytest.raises(UserError, match="starts on 2019-01-02, after quote date 2018-12-31"):
        schedule.lookup(np.array(["2018-12-31"], dtype="datetime64[D]").astype(int))


def _day_chunks(tmp_path, day_order, split):
    """Chunks cut at `split` rows from a long file whose rows come in `day_order` (3 per day)."""
    from backtest.importers.common import Chunk
    from backtest.importers.long import LongFormat

    text = "\n".join([HEADER, *(r.replace("04/25/2019", d) for d in day_order for r in ROWS)]) + "\n"
    (tmp_path / "days.csv").write_text(text)
    (table, _), = [(c.chain, c.first_line) for c in LongFormat().chunks(tmp_path / "days.csv")]
    bounds = [0, *split, table.num_rows]
    return [Chunk(table.slice(a, b - a), 2 + a, b - a) for a, b in zip(bounds, bounds[1:])]


def test_blocks_are_recut_into_whole_quote_days(tmp_path):
    from backtest.importers.pipeline import whole_days

    chunks = _day_chunks(tmp_path, ["04/25/2019", "04/26/2019", "04/29/2019"], [2, 4, 5])
    out = list(whole_days(chunks, "days.csv"))
    assert [t.num_rows for t, _ in out] == [3, 3, 3]
    assert [sorted({str(d) for d in t.column("quote_date").to_pylist()}) for t, _ in out] == [
        ["2019-04-25"], ["2019-04-26"], ["2019-04-29"]]
    assert sum(n for _, n in out) == 9
    chunks = _day_chunks(tmp_path, ["04/25/2019", "04/26/2019", "04/25/2019"], [3, 6])
    with pytest.raises(ImportFileError, match=r"days\.csv line 8: quote date 2019-04-25 appears again after other dates"):
        list(whole_days(chunks, "days.csv"))


def test_a_short_row_names_its_line(tmp_path):
    bad = tmp_path / "short.csv"
    bad.write_text(_body(ROWS[0], ROWS[1].rsplit(",", 1)[0], ROWS[2]))
    with pytest.raises(ImportFileError, match=r"short\.csv line 3: Expected 17 columns, got 16"):
        import_files([bad], tmp_path / "ds", FormatSpec("long"), RATES)
    assert not (tmp_path / "ds").exists()
