"""Numba kernel of the chain index (:mod:`backtest.index`): linking each contract's row to its
row on the next trading day.

Rows are sorted by (day, expiration, root, put, strike) with no duplicate contract on a day, so
one merge walk over each pair of consecutive days finds every link in O(rows); a lexsort of all
rows by contract (what this replaces) costs O(rows log rows) and most of an index build.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _compare(expiration, root, put, strike, i, j):
    """-1, 0 or 1 as row i's contract sorts before, equals or after row j's."""
    if expiration[i] != expiration[j]:
        return -1 if expiration[i] < expiration[j] else 1
    if root[i] != root[j]:
        return -1 if root[i] < root[j] else 1
    if put[i] != put[j]:
        return -1 if put[i] < put[j] else 1
    if strike[i] != strike[j]:
        return -1 if strike[i] < strike[j] else 1
    return 0


@njit(cache=True)
def link_next_day(day_row_start, expiration, root, put, strike, next_row):
    """Set ``next_row[r]`` to the row of row r's contract on the next day (left as it is, -1,
    where that day lacks the contract). ``day_row_start`` [n_days + 1]: each day's first row."""
    for d in range(len(day_row_start) - 2):
        i, i_end = day_row_start[d], day_row_start[d + 1]
        j, j_end = i_end, day_row_start[d + 2]
        while i < i_end and j < j_end:
            c = _compare(expiration, root, put, strike, i, j)
            if c == 0:
                next_row[i] = j
                i += 1
                j += 1
            elif c < 0:
                i += 1
            else:
                j += 1


def links(day_row_start: np.ndarray, expiration: np.ndarray, root: np.ndarray, put: np.ndarray,
          strike: np.ndarray) -> np.ndarray:
    """Each row's next-day row, or -1 (int32 while the rows fit, else int64)."""
    n = len(strike)
    next_row = np.full(n, -1, dtype=np.int32 if n < 2**31 else np.int64)
    link_next_day(day_row_start, expiration, root, put, strike, next_row)
    return next_row
