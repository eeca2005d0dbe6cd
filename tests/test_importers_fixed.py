"""The numba reader of fixed layouts (backtest.importers.fixed) gives exactly the Arrow reader's rows."""
import gzip
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pytest
from numba import njit

from backtest.importers import common, csv_nb
from backtest.importers.fixed import fixed_blocks
from backtest.importers.long import LongFormat
from backtest.importers.source import ImportFileError, read_csv_batches
from tests.test_importers_formats import LONG

HEADER, *ROWS = LONG.strip().split("\n")


def _both(path):
    """(numba reader's chunks, Arrow reader's chunks) of a long-format file."""
    fmt = LongFormat()
    return list(fmt.chunks(path)), list(common.CsvFormat.chunks(fmt, path))


def _assert_same(fast, arrow):
    assert [(c.first_line, c.input_records) for c in fast] == [(c.first_line, c.input_records) for c in arrow]
    for a, b in zip(fast, arrow):
        for name in a.chain.column_names:
            assert a.chain.column(name).equals(b.chain.column(name)), name


def test_real_spx_files_read_the_same(real_data):
    for path in sorted((real_data / "spx-2019q2-cboe-delayed").glob("SPX_*.csv.gz"))[:2]:
        fast, arrow = _both(path)
        assert sum(c.input_records for c in fast) > 10_000
        _assert_same(fast, arrow)


QUIRKS = [
    # 17 significant digits, an exponent, negative zero, empty and NaN optional values
    "SPX,2919.04,CBOE,SPXW190517C02900000,call,05/17/2019,04/25/2019,2900.0,60.0,0.0,58.6,59.9,10,3675,"
    "0.14000000000000001,-0.0,2.7e-3",
    "SPX,2919.04,CBOE,SPXW190517C02950000,C,05/17/2019,04/25/2019,2950,,0.0,30.05,31.25,,,NaN,0.45,",
    # spaces around text, upper-case PUTS, lower-case OSI symbol with padding, an index caret
    "^spx,2919.04,CBOE,  spx   190517P02900000 , PUTS ,05/17/2019,04/25/2019,2900.0,40.0,0.0,39.1,40.3,7,800,"
    "0.15,-0.45,0.0027",
    # no option symbol: the root is the underlying; a long mantissa and a sign
    "SPX,2919.040000000000001,CBOE,,p,05/17/2019,04/25/2019,+2850.0,1,0,1.5,1.75,1,2,0.2,-0.3,0.001",
]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_quirky_values_read_the_same(tmp_path, newline):
    text = newline.join(["\ufeff" + HEADER, *ROWS, "", *QUIRKS]) + newline
    path = tmp_path / "quirks.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    fast, arrow = _both(path)
    assert sum(c.input_records for c in fast) == len(ROWS) + len(QUIRKS)
    _assert_same(fast, arrow)
    roots = fast[0].chain.column("root").to_pylist()
    assert roots[-4:] == ["SPXW", "SPXW", "SPX", "SPX"] and set(fast[0].chain.column("underlying").to_pylist()) == {"SPX"}


def test_blocks_with_quotes_or_other_date_formats_are_read_by_arrow(tmp_path):
    quoted = ROWS[:1] + [ROWS[1].replace(",call,", ',"call",')] + ROWS[2:]
    iso = [r.replace("05/17/2019", "2019-05-17 00:00").replace("04/25/2019", "2019-04-25 00:00") for r in ROWS]
    for name, rows in (("quoted.csv", quoted), ("iso.csv", iso)):
        path = tmp_path / name
        path.write_text("\n".join([HEADER, *rows]) + "\n")
        fast, arrow = _both(path)
        _assert_same(fast, arrow)
        assert fast[0].chain.num_rows == 3
    # errors in a block read by Arrow still name the file line
    path = tmp_path / "quoted.csv"
    path.write_text("\n".join([HEADER, *quoted[:2], quoted[2].replace(",2900.0,", ",29S0,")]) + "\n")
    with pytest.raises(ImportFileError, match=r"quoted\.csv line 4: column 'strike': '29S0' is not a number"):
        list(LongFormat().chunks(path))
    path.write_text("\n".join([HEADER, *quoted[:2], quoted[2].rsplit(",", 1)[0]]) + "\n")
    with pytest.raises(ImportFileError, match=r"quoted\.csv line 4: Expected 17 columns, got 16"):
        list(LongFormat().chunks(path))


def _many_rows(n):
    return [ROWS[i % 3].replace("2900.0", f"{2000 + i}.0").replace("02900000", f"0{2000 + i}000") for i in range(n)]


def test_small_blocks_keep_file_lines(tmp_path):
    rows = _many_rows(200)
    path = tmp_path / "many.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    fmt = LongFormat()
    fast = list(fixed_blocks(path, None, fmt.layout, fmt.fixed, "long", common.FileState(str(path)), block_size=1000))
    arrow = list(read_csv_batches(path, fmt.layout, "long", block_size=1000))
    assert len(fast) > 10
    assert [line for _, line in fast] == [2 + sum(b.rows for b, _ in fast[:i]) for i in range(len(fast))]
    assert sum(b.rows for b, _ in fast) == sum(t.num_rows for t, _ in arrow) == 200
    bad = rows[:150] + [rows[150].replace(f",{2150}.0,", ",21S0,")] + rows[151:]
    path.write_text("\n".join([HEADER, *bad]) + "\n")
    with pytest.raises(ImportFileError, match=r"many\.csv line 152: column 'strike': '21S0' is not a number"):
        list(fixed_blocks(path, None, fmt.layout, fmt.fixed, "long", common.FileState(str(path)), block_size=1000))
    empty_type = rows[:120] + [rows[120].replace(",put,", ",,").replace(",call,", ",,")] + rows[121:]
    path.write_text("\n".join([HEADER, *empty_type]) + "\n")
    with pytest.raises(ImportFileError, match=r"many\.csv line 122: column 'type' is empty, expected call/put or C/P"):
        list(fixed_blocks(path, None, fmt.layout, fmt.fixed, "long", common.FileState(str(path)), block_size=1000))
    changes = rows[:170] + [r.replace("SPX,", "SPY,", 1) for r in rows[170:]]
    path.write_text("\n".join([HEADER, *changes]) + "\n")
    with pytest.raises(ImportFileError, match=r"many\.csv line 172: underlying changes from 'SPX' to 'SPY'"):
        list(fixed_blocks(path, None, fmt.layout, fmt.fixed, "long", common.FileState(str(path)), block_size=1000))


def test_empty_date_names_its_line(tmp_path):
    path = tmp_path / "nodate.csv"
    path.write_text("\n".join([HEADER, ROWS[0], ROWS[1].replace("04/25/2019", ""), ROWS[2]]) + "\n")
    with pytest.raises(ImportFileError, match=r"nodate\.csv line 3: column 'quotedate' is empty, expected a date"):
        list(LongFormat().chunks(path))


def test_many_deferred_values_read_the_same(tmp_path):
    # more tokens than the reader's first buffer of deferred values holds (it grows and re-reads)
    rows = [r.replace(",0.14,", ",0.14000000000000001,").replace(",0.141,", ",1.41e-1,")
            .replace(",0.15,", ",NaN,") for r in _many_rows(3000)]
    path = tmp_path / "deferred.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    fast, arrow = _both(path)
    _assert_same(fast, arrow)
    iv = fast[0].chain.column("iv").to_pylist()
    assert iv[:3] == [0.14000000000000001, 0.141, None]


@pytest.mark.parametrize("values", [[1.0, np.nan, 3.0], [np.nan] * 3, [1.0, -0.0, np.inf], [], [2.0, np.nan, 1.5],
                                    [2.0**70, 1.0]])
def test_nan_to_null_equals_arrow_from_pandas_and_its_int64_cast(values):
    values = np.array(values, np.float64)
    expected = pa.array(values, pa.float64(), from_pandas=True)
    assert common.nan_to_null(values).equals(expected)
    try:
        whole = expected.cast(pa.int64())
    except pa.ArrowInvalid as exc:
        with pytest.raises(pa.ArrowInvalid, match=str(exc).split(" was ")[0][:20]):
            common.nan_to_null(values, whole=True)
    else:
        assert common.nan_to_null(values, whole=True).equals(whole)


def _random_number(rng):
    """A decimal text of 1 to 12 characters: digits, an optional dot and sign, leading zeros."""
    digits = "".join(rng.choice(list("0123456789"), rng.integers(1, 10)))
    if rng.random() < 0.7:
        cut = rng.integers(0, len(digits) + 1)
        digits = digits[:cut] + "." + digits[cut:]
    return ("-" if rng.random() < 0.2 else "") + digits


def test_random_short_numbers_read_the_same(tmp_path):
    # the kernel converts fields of up to 8 bytes after the sign 8 digits at a time, longer ones digit by digit
    rng = np.random.default_rng(7)
    rows = []
    for row in _many_rows(400):
        fields = row.split(",")
        for column in (1, 8, 10, 11, 14, 15, 16):  # underlying_last, last, bid, ask, impliedvol, delta, gamma
            fields[column] = _random_number(rng)
        rows.append(",".join(fields))
    path = tmp_path / "numbers.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    fast, arrow = _both(path)
    _assert_same(fast, arrow)


def test_short_date_before_an_empty_field_names_the_date(tmp_path):
    # a 9-character date is not read together with the separator and the empty field after it
    path = tmp_path / "shortdate.csv"
    short = ROWS[1].replace("05/17/2019,04/25/2019", "05/17/201,")
    path.write_text("\n".join([HEADER, ROWS[0], short, ROWS[2]]) + "\n")
    with pytest.raises(ImportFileError, match=r"shortdate\.csv line 3: column 'quotedate' is empty, expected a date"):
        list(LongFormat().chunks(path))


@njit
def _decimals_to_floats(mantissas, decimals):
    values, ok = np.empty(len(mantissas)), np.empty(len(mantissas), np.bool_)
    for i in range(len(mantissas)):
        values[i], ok[i] = csv_nb.decimal_to_float(mantissas[i], decimals[i], csv_nb._NEGATIVE_POWERS)
    return values, ok


def _long_digits(rng) -> str:
    """16 to 18 digits: random ones, a double's shortest repr, or a decimal within a unit of the
    18th digit of a midpoint between two adjacent doubles (where rounding is hardest)."""
    kind = rng.integers(3)
    x = float(rng.random() * 10.0 ** rng.integers(-3, 7))
    if kind == 0:
        return "".join(rng.choice(list("0123456789"), rng.integers(16, 19)))
    if kind == 1:
        return repr(x).split("e")[0].replace(".", "").lstrip("0").ljust(16, "0")[:18]
    midpoint = (Decimal(x) + Decimal(float(np.nextafter(x, np.inf)))) / 2
    digits = f"{midpoint:.17E}".split("E")[0].replace(".", "")
    return str(int(digits) + int(rng.integers(-1, 2)))


def test_long_decimals_round_as_python():
    # Python's float() of a decimal text is correctly rounded (ties to even), as Arrow's parser is
    rng = np.random.default_rng(11)
    texts = [_long_digits(rng) for _ in range(30_000)]
    decimals = rng.integers(0, csv_nb.MAX_DECIMALS + 1, len(texts))
    values, ok = _decimals_to_floats(np.array([int(t) for t in texts], np.uint64), decimals)
    expected = np.array([float(f"{t}e-{k}") for t, k in zip(texts, decimals)])
    assert np.array_equal(values[ok].view(np.uint64), expected[ok].view(np.uint64))
    assert ok.mean() > 0.99  # declined: only texts within ~2**-64 relative of a midpoint


def test_random_long_numbers_read_the_same(tmp_path):
    # 16-18 significant digits in the kernel (Eisel-Lemire), declined and longer ones through Arrow's parser
    rng = np.random.default_rng(5)
    rows = []
    for row in _many_rows(400):
        fields = row.split(",")
        for column in (1, 8, 10, 11, 14, 15, 16):
            digits = _long_digits(rng) + "".join(rng.choice(list("0123456789"), rng.integers(0, 3)))
            cut = int(rng.integers(0, len(digits) + 1))
            text = "0." + "0" * int(rng.integers(0, 12)) + digits if rng.random() < 0.3 else (
                digits[:cut] + "." + digits[cut:])
            fields[column] = ("-" if rng.random() < 0.2 else "") + text
        rows.append(",".join(fields))
    path = tmp_path / "long.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    fast, arrow = _both(path)
    _assert_same(fast, arrow)
