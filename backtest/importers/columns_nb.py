"""Numba kernels over canonical columns (backtest.importers.common)."""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def whole_numbers(values, out):
    """out[i] = values[i] as int64 where it is a whole number below 2**63 in magnitude, 0 where
    it is NaN; returns False at the first other value (inf, a fraction), leaving out unfinished."""
    for i in range(len(values)):
        v = values[i]
        if np.isnan(v):
            out[i] = 0
        elif np.trunc(v) == v and abs(v) < 2.0**63:
            out[i] = np.int64(v)
        else:
            return False
    return True
