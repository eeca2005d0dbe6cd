"""Executors for the search's ``map_fn``: each is a context manager yielding a ``map``-like
callable (``map_fn(fn, batches)`` -> results in order). The cluster package adds a Ray-backed
one; the search core never imports it."""
from __future__ import annotations

import contextlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor


@contextlib.contextmanager
def serial(workers: int | None = None):
    yield map


@contextlib.contextmanager
def processes(workers: int | None = None):
    """A local process pool. Spawned, not forked: numba's OpenMP threading layer refuses to run in
    a forked child. Each worker loads the market once (``evaluate.market_for``)."""
    with ProcessPoolExecutor(workers or os.cpu_count(), mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool.map
