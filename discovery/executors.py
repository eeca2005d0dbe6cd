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
    """A local process pool (fork: workers inherit the loaded modules; each loads the market once)."""
    with ProcessPoolExecutor(workers or os.cpu_count(), mp_context=multiprocessing.get_context("fork")) as pool:
        yield pool.map
