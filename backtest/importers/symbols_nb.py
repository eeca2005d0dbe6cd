"""Numba kernels: the trading class (root) of OSI-style option symbols, read straight from byte
buffers (an Arrow string array's, or a CSV block's), so that no per-row string is ever built
(the symbols are mostly distinct per row, while their roots are a handful)."""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _is_space(byte: int) -> bool:
    return byte == 32 or 9 <= byte <= 13


@njit(inline="always")
def trim_span(data, a, b):
    """data[a:b] without surrounding ASCII whitespace, as (start, end)."""
    while a < b and _is_space(data[a]):
        a += 1
    while b > a and _is_space(data[b - 1]):
        b -= 1
    return a, b


@njit(inline="always")
def osi_root_span(data, a, b, suffix):
    """The root of a trimmed symbol data[a:b]: without its last `suffix` bytes (and the
    whitespace before them) when longer than that, else the whole symbol."""
    if b - a > suffix:
        b -= suffix
        while b > a and _is_space(data[b - 1]):
            b -= 1
    return a, b


@njit(inline="always")
def intern_span(data, a, length, starts, lengths, n_roots, last):
    """The code of the bytes data[a:a + length] among the n_roots distinct ones seen so far
    (starts/lengths), adding them if new; rows come in runs of one root, so the previous row's
    code (`last`) is tried first. Returns (code, n_roots)."""
    for attempt in range(n_roots + 1):
        r = last if attempt == 0 else attempt - 1
        if r < 0 or lengths[r] != length:
            continue
        s = starts[r]
        same = True
        for j in range(length):
            if data[s + j] != data[a + j]:
                same = False
                break
        if same:
            return r, n_roots
    starts[n_roots] = a
    lengths[n_roots] = length
    return n_roots, n_roots + 1


@njit(cache=True)
def osi_roots(offsets, data, valid, suffix):
    """Per row, the code of its root: the symbol without surrounding ASCII whitespace and, when
    longer than `suffix` bytes, without its last `suffix` bytes (and the whitespace before them);
    -1 where that leaves nothing or the row is null. Returns (codes, start, length) with each
    distinct root's bytes at data[start[c]:start[c] + length[c]] (its first occurrence)."""
    n = len(offsets) - 1
    codes = np.full(n, -1, np.int32)
    starts = np.empty(n, np.int64)
    lengths = np.empty(n, np.int64)
    n_roots = 0
    last = -1
    for i in range(n):
        if not valid[i]:
            continue
        a, b = trim_span(data, offsets[i], offsets[i + 1])
        a, b = osi_root_span(data, a, b, suffix)
        if b == a:
            continue
        code, n_roots = intern_span(data, a, b - a, starts, lengths, n_roots, last)
        codes[i] = code
        last = code
    return codes, starts[:n_roots], lengths[:n_roots]
