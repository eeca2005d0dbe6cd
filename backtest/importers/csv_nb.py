"""Numba kernel: one block of a fixed vendor CSV layout (unquoted fields, one record a line)
straight from its bytes to typed columns, without building a string per field.

Each file column has a kind (skip, number, date, the underlying symbol, an OSI option symbol,
an option right) and a slot in that kind's output. Numbers of up to 18 significant digits
with an optional sign and decimal point are converted here, correctly rounded as strtod and
Arrow round: up to 15 digits as an integer below 2**53 divided by a power of ten of at most
1e15 (exact operands, so the one rounding is the right one: Clinger's fast path), 16 to 18
(this vendor writes Python reprs such as 0.11199999999999999) by the Eisel-Lemire algorithm
(a 128-bit product with a table of powers of ten; it declines the rare inputs too close to a
rounding boundary to decide). Anything else is returned as a *deferred* token for the caller:
the declined and longer plain decimals marked LONG_DECIMAL (converted in one call, straight
from the block), the rest (empty, NaN, exponents, bad text) for Arrow's parser or an error
naming its line. Dates in the file's
detected format with two-digit month and day are converted here; other date texts are deferred
too. Errors come back as a code with the line (counted from the block's start) and the column;
the kernel also stops with DEFERRED_FULL when the caller's buffer of deferred tokens is full
(the caller retries with a larger one).

Bytes are read 8 at a time (SWAR on unaligned uint64 loads): a field's end is the first comma
or newline byte of a word, numbers of up to 8 bytes are checked and converted as one word, and
a date text equal to the column's previous one (dates come in runs) reuses its day; a branch
per byte mispredicts at the end of each of the mostly short fields.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.cpython.unsafe.numbers import leading_zeros, trailing_zeros
from numba.extending import intrinsic

from backtest.importers.symbols_nb import intern_span, osi_root_span, trim_span

SKIP, NUMBER, DATE, UNDERLYING, OSI_SYMBOL, RIGHT = range(6)
MDY, YMD_DASH, YMD = range(3)  # date formats parsed here: %m/%d/%Y, %Y-%m-%d, %Y%m%d
OTHER, EXACT, LONG_DECIMAL = range(3)  # how a number field was read
LONG_DECIMAL_WIDTH = 32
OK, COLUMN_COUNT, EMPTY, BAD_RIGHT, UNDERLYING_CHANGES, DEFERRED_FULL = range(6)  # error codes
CALL, PUT = 0, 1

_COMMA, _NEWLINE, _CR = 44, 10, 13
_POW10 = np.array([10.0 ** k for k in range(16)])
_MONTH_DAYS = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)


@intrinsic
def _load_u64(typingctx, data, i):
    """The 8 bytes data[i:i + 8] as a little-endian uint64 (one unaligned load; i + 8 <= len(data))."""
    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        word = builder.bitcast(builder.gep(array.data, [args[1]]), ir.IntType(64).as_pointer())
        return builder.load(word, align=1)
    return types.uint64(data, types.int64), codegen


@intrinsic
def _mul_128(typingctx, a, b):
    """The 128-bit product of two uint64 as its (high, low) 64-bit words (one multiply)."""
    def codegen(context, builder, signature, args):
        i128 = ir.IntType(128)
        product = builder.mul(builder.zext(args[0], i128), builder.zext(args[1], i128))
        high = builder.trunc(builder.lshr(product, ir.Constant(i128, 64)), ir.IntType(64))
        return context.make_tuple(builder, signature.return_type, [high, builder.trunc(product, ir.IntType(64))])
    return types.UniTuple(types.uint64, 2)(types.uint64, types.uint64), codegen


@intrinsic
def _float_from_bits(typingctx, bits):
    """The float64 whose IEEE 754 bits are the uint64 `bits`."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.uint64), codegen


_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_COMMAS = np.uint64(0x0101010101010101 * _COMMA)
_NEWLINES = np.uint64(0x0101010101010101 * _NEWLINE)


@njit(inline="always")
def _zero_bytes(v):
    """0x80 in each byte of v that is zero, 0 in the others (exact: no carry between bytes)."""
    return ~(((v & _LOW7) + _LOW7) | v | _LOW7)


@njit(inline="always")
def _field_end(data, i, n):
    """The index of the comma or newline (or the end of the data) that ends the field at i,
    found 8 bytes a step (a branch per byte costs ~2x on the short fields of these files)."""
    while i + 8 <= n:
        v = _load_u64(data, i)
        separators = _zero_bytes(v ^ _COMMAS) | _zero_bytes(v ^ _NEWLINES)
        if separators:
            return i + (trailing_zeros(separators) >> 3)
        i += 8
    while i < n and data[i] != _COMMA and data[i] != _NEWLINE:
        i += 1
    return i


_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)
_HIGH = np.uint64(0x8080808080808080)
_ZEROS = np.uint64(0x3030303030303030)  # '0' in every byte
_DOTS = np.uint64(0x2E2E2E2E2E2E2E2E)
_ABOVE_NINE = np.uint64(0x4646464646464646)  # + 0x46 sets a byte's high bit above '9'


@njit(inline="always")
def _short_number(data, i, length, negative, pow10):
    """_number of a field of 1 to 8 bytes after its sign, data[i:i + length] (i + 8 <= len(data)),
    without a branch per byte: the digits, with the dot taken out, are checked and converted
    8 at a time (D. Lemire's SWAR digit conversion); the value is the same integer divided by
    the same power of ten."""
    bits = np.uint64(8 * length)
    field = _ONES >> (np.uint64(64) - bits)
    v = _load_u64(data, i) & field
    dots = _zero_bytes(v ^ _DOTS) & field
    if dots & (dots - np.uint64(1)):  # a second dot
        return np.nan, OTHER
    if dots:
        at = trailing_zeros(dots) & np.uint64(0x38)  # 8 x the dot's index
        below = (np.uint64(1) << at) - np.uint64(1)
        v = (v & below) | (((v >> at) >> np.uint64(8)) << at)
        bits -= np.uint64(8)
        decimals = (bits - at) >> np.uint64(3)
    else:
        decimals = np.uint64(0)
    if bits == 0:
        return np.nan, OTHER
    digits = _ONES >> (np.uint64(64) - bits)
    v = (v & digits) | (_ZEROS & ~digits)
    if (v | (v + _ABOVE_NINE) | (v - _ZEROS)) & _HIGH:  # a byte that is not a digit
        return np.nan, OTHER
    v = (v - _ZEROS) << (np.uint64(64) - bits)  # the digits in the high bytes: leading zeros
    v = ((v * np.uint64(2561)) >> np.uint64(8)) & np.uint64(0x00FF00FF00FF00FF)
    v = ((v * np.uint64(6553601)) >> np.uint64(16)) & np.uint64(0x0000FFFF0000FFFF)
    mantissa = np.int64((v * np.uint64(42949672960001)) >> np.uint64(32))
    value = mantissa / pow10[decimals]
    return (-value if negative else value), EXACT


MAX_DIGITS = 18  # significant digits converted here (a mantissa below 10**18 fits an int64)
MAX_DECIMALS = 27  # and decimals (down to 10**-27 the paper's table is built as here)


def _negative_powers_of_ten(n: int) -> np.ndarray:
    """Rows k = 0..n: 10**-k as a 128-bit mantissa with its top bit set, (high, low) words,
    rounded up for k > 0 as the Eisel-Lemire algorithm requires (D. Lemire, "Number parsing at a
    gigabyte per second", 2021, appendix B; the binary exponent is floor(-k log2(10)))."""
    rows = np.empty((n + 1, 2), np.uint64)
    for k in range(n + 1):
        bits = (10**k).bit_length()
        mantissa = (1 << (127 + bits)) // 10**k + 1 if k else 1 << 127
        if (-217706 * k) >> 16 != (-bits if k else 0):  # the kernel's floor(-k log2(10))
            raise AssertionError(k)
        rows[k] = mantissa >> 64, mantissa & (2**64 - 1)
    return rows


_NEGATIVE_POWERS = _negative_powers_of_ten(MAX_DECIMALS)
_ONE = np.uint64(1)
_LOW9 = np.uint64(0x1FF)
_FRACTION = np.uint64((1 << 52) - 1)


@njit(inline="always")
def decimal_to_float(mantissa, decimals, powers):
    """The float64 nearest mantissa * 10**-decimals (uint64 mantissa, 0 <= decimals < len(powers)),
    ties to even, as (value, True); (NaN, False) where the 128-bit product cannot decide the
    rounding (the caller converts those otherwise). The Eisel-Lemire algorithm as Go's strconv
    writes it (eiselLemire64)."""
    if mantissa == 0:
        return 0.0, True
    shift = leading_zeros(mantissa)
    man = mantissa << np.uint64(shift)
    exponent = ((-217706 * decimals) >> 16) + 64 + 1023 - np.int64(shift)
    high, low = _mul_128(man, powers[decimals, 0])
    if high & _LOW9 == _LOW9 and low + man < man:  # the truncated low word could carry: widen
        wide_high, wide_low = _mul_128(man, powers[decimals, 1])
        merged_low = low + wide_high
        merged_high = high + np.uint64(merged_low < low)
        if merged_high & _LOW9 == _LOW9 and merged_low + _ONE == 0 and wide_low + man < man:
            return np.nan, False
        high, low = merged_high, merged_low
    top = high >> np.uint64(63)
    fraction = high >> (top + np.uint64(9))  # 54 bits
    exponent -= np.int64(top ^ _ONE)
    if low == 0 and high & _LOW9 == 0 and fraction & np.uint64(3) == _ONE:  # may be a tie
        return np.nan, False
    fraction = (fraction + (fraction & _ONE)) >> _ONE
    if fraction >> np.uint64(53):
        fraction >>= _ONE
        exponent += 1
    if exponent <= 0 or exponent >= 0x7FF:  # subnormal or out of range
        return np.nan, False
    return _float_from_bits((np.uint64(exponent) << np.uint64(52)) | (fraction & _FRACTION)), True


@njit(inline="always")
def _number(data, a, e, pow10):
    """Read the field data[a:e]: (value, status): EXACT when it is [-]digits[.digits] with 1 to
    MAX_DIGITS significant digits and at most MAX_DECIMALS decimals (value correctly rounded;
    from 16 digits on unless decimal_to_float declines), LONG_DECIMAL when it has that form
    otherwise (up to LONG_DECIMAL_WIDTH bytes; value NaN), else OTHER (value NaN)."""
    i = a
    negative = i < e and data[i] == 45
    if negative:
        i += 1
    if 0 < e - i <= 8 and i + 8 <= len(data):
        return _short_number(data, i, e - i, negative, pow10)
    mantissa = 0
    digits = 0
    significant = 0  # digits from the first non-zero one (the mantissa's)
    decimals = 0
    dot = False
    for j in range(i, e):
        x = data[j]
        if 48 <= x <= 57:
            mantissa = mantissa * 10 + (x - 48)
            digits += 1
            significant += mantissa != 0
            decimals += dot
        elif x == 46 and not dot:
            dot = True
        else:
            return np.nan, OTHER
    if digits == 0:
        return np.nan, OTHER
    if digits > 15:
        value, ok = decimal_to_float(np.uint64(mantissa), decimals, _NEGATIVE_POWERS) if (
            significant <= MAX_DIGITS and decimals < len(_NEGATIVE_POWERS)) else (np.nan, False)
        if not ok:
            return np.nan, LONG_DECIMAL if e - a <= LONG_DECIMAL_WIDTH else OTHER
    else:
        value = mantissa / pow10[decimals]
    return (-value if negative else value), EXACT


@njit(inline="always")
def _two(data, a):
    x, y = data[a] - 48, data[a + 1] - 48
    return x * 10 + y if 0 <= x <= 9 and 0 <= y <= 9 else -1


@njit(inline="always")
def _date(data, a, b, e, fmt, month_days):
    """Read the field data[a:e] (b: its separator, e < b after a line end's carriage return):
    (days since the epoch, ok), ok when it is a date in format `fmt` with two-digit month and
    day and no surrounding space, else days -1."""
    width = 8 if fmt == YMD else 10
    if a + width != e and a + width != b:
        return -1, False
    if fmt == MDY and data[a + 2] == 47 and data[a + 5] == 47:
        m, d, y = _two(data, a), _two(data, a + 3), _two(data, a + 6) * 100 + _two(data, a + 8)
    elif fmt == YMD_DASH and data[a + 4] == 45 and data[a + 7] == 45:
        y, m, d = _two(data, a) * 100 + _two(data, a + 2), _two(data, a + 5), _two(data, a + 8)
    elif fmt == YMD:
        y, m, d = _two(data, a) * 100 + _two(data, a + 2), _two(data, a + 4), _two(data, a + 6)
    else:
        return -1, False
    if y < 0 or not 1 <= m <= 12 or not 1 <= d <= month_days[m]:
        return -1, False
    if m == 2 and d == 29 and not (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)):
        return -1, False
    return days_from_civil(y, m, d), True


@njit(inline="always")
def _run_date(data, a, b, e, fmt, month_days, last_text, last_day):
    """_date, reusing the day of the column's previous date when the text is the same (a file's
    dates come in long runs): `last_text` holds that text's first 8 bytes and the rest (zeros:
    none yet), `last_day` its day; both are updated."""
    width = 8 if fmt == YMD else 10
    if e - a != width or a + 16 > len(data):
        return _date(data, a, b, e, fmt, month_days)
    head = _load_u64(data, a)
    tail = _load_u64(data, a + 8) & np.uint64(0xFFFF) if width == 10 else np.uint64(0)
    if head == last_text[0] and tail == last_text[1]:
        return last_day[0], True
    day, ok = _date(data, a, b, e, fmt, month_days)
    if ok:
        last_text[0], last_text[1], last_day[0] = head, tail, day
    return day, ok


@njit(inline="always")
def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


_CALLS = np.frombuffer(b"calls", np.uint8)
_PUTS = np.frombuffer(b"puts", np.uint8)


@njit(inline="always")
def _right(data, a, b, calls, puts):
    """CALL/PUT for c, call, calls, p, put, puts in any case; -1 otherwise."""
    n = b - a
    first = data[a] | 32 if n else 0
    if first == calls[0]:
        word, code = calls, CALL
    elif first == puts[0]:
        word, code = puts, PUT
    else:
        return -1
    if n != 1 and n != len(word) - 1 and n != len(word):
        return -1
    for j in range(1, n):
        if (data[a + j] | 32) != word[j]:
            return -1
    return code


@njit(inline="always")
def _same_symbol(data, a, b, ref_a, ref_b):
    """data[a:b] equals data[ref_a:ref_b], ASCII case ignored (spans already cleaned)."""
    if b - a != ref_b - ref_a:
        return False
    for j in range(b - a):
        x, y = data[a + j], data[ref_a + j]
        if x != y and (x | 32) != (y | 32):
            return False
    return True


@njit(cache=True)
def parse_block(data, kinds, slots, n_numbers, n_dates, date_formats, osi_suffix, deferred):
    """Parse whole lines in `data` (uint8, no header). Returns

    (rows, numbers[n_numbers, rows] float64 (NaN where deferred), dates[n_dates, rows] int32
    (deferred: -1), rights int8, root codes int32 (-1: none), root starts, root lengths,
    underlying span (start, end) of the first row (cleaned: trimmed, no leading ^),
    deferred tokens as rows of (row, line, column, start, end, status) (the first of the caller's
    `deferred` buffer), lines read,
    error (code, line, column, fields on that line)), lines counted from 0 at data[0].
    """
    n = len(data)
    n_columns = len(kinds)
    capacity = 1
    for i in range(n):
        capacity += data[i] == _NEWLINE
    numbers = np.empty((n_numbers, capacity), np.float64)
    dates = np.empty((n_dates, capacity), np.int32)
    last_texts, last_days = np.zeros((n_dates, 2), np.uint64), np.zeros(n_dates, np.int64)  # see _run_date
    rights = np.empty(capacity, np.int8)
    root_codes = np.full(capacity, -1, np.int32)
    root_starts = np.empty(capacity, np.int64)
    root_lengths = np.empty(capacity, np.int64)
    n_deferred = 0
    error = np.zeros(4, np.int64)
    under_a = under_b = -1
    n_roots = 0
    last_root = -1
    row = 0
    line = 0
    a = 0  # the start of the current field
    while a < n:
        column = 0
        b = _field_end(data, a, n)
        if b == a + (data[a] == _CR) and (b == n or data[b] == _NEWLINE):  # an empty line
            a = b + 1
            line += 1
            continue
        while True:  # the fields of one line; b: the end of the field at a
            line_end = b == n or data[b] == _NEWLINE
            e = b - 1 if line_end and b > a and data[b - 1] == _CR else b  # without a CRLF's CR
            kind = kinds[column] if column < n_columns else SKIP
            slot = slots[column] if column < n_columns else 0
            status = EXACT
            if kind == NUMBER:
                value, status = _number(data, a, e, _POW10)
                numbers[slot, row] = value
            elif kind == DATE:
                day, ok = _run_date(data, a, b, e, date_formats[slot], _MONTH_DAYS, last_texts[slot], last_days[slot:slot + 1])
                dates[slot, row] = day
                status = EXACT if ok else OTHER
            if status != EXACT:
                if n_deferred == len(deferred):
                    error[:] = (DEFERRED_FULL, line, column, 0)
                    break
                deferred[n_deferred, 0] = row
                deferred[n_deferred, 1] = line
                deferred[n_deferred, 2] = column
                deferred[n_deferred, 3] = a
                deferred[n_deferred, 4] = e
                deferred[n_deferred, 5] = status
                n_deferred += 1
            elif kind > DATE:
                s, e = trim_span(data, a, b)
                if kind == OSI_SYMBOL:
                    s, e = osi_root_span(data, s, e, osi_suffix)
                    if e > s:
                        code, n_roots = intern_span(data, s, e - s, root_starts, root_lengths, n_roots, last_root)
                        root_codes[row] = code
                        last_root = code
                elif s == e:
                    error[:] = (EMPTY, line, column, 0)
                    break
                elif kind == RIGHT:
                    right = _right(data, s, e, _CALLS, _PUTS)
                    if right < 0:
                        error[:] = (BAD_RIGHT, line, column, 0)
                        break
                    rights[row] = right
                else:  # UNDERLYING: one per file; cleaned of an index caret
                    while s < e and data[s] == 94:
                        s += 1
                    if under_a < 0:
                        under_a, under_b = s, e
                    elif not _same_symbol(data, s, e, under_a, under_b):
                        error[:] = (UNDERLYING_CHANGES, line, column, 0)
                        break
            column += 1
            a = b + 1
            if line_end:
                break
            b = _field_end(data, a, n)
        if error[0] != OK:
            break
        if column != n_columns:
            error[:] = (COLUMN_COUNT, line, 0, column)
            break
        row += 1
        line += 1
    return _result(row, numbers, dates, rights, root_codes, root_starts, root_lengths, n_roots,
                   under_a, under_b, deferred, n_deferred, line, error)


@njit
def _result(rows, numbers, dates, rights, root_codes, root_starts, root_lengths, n_roots,
            under_a, under_b, deferred, n_deferred, lines, error):
    return (rows, numbers[:, :rows], dates[:, :rows], rights[:rows], root_codes[:rows], root_starts[:n_roots],
            root_lengths[:n_roots], (under_a, under_b), deferred[:n_deferred], lines, error)
