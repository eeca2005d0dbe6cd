"""The state of the (shared, virtual) machine while a suite ran, so figures from different
runs can be compared: on the 2-vCPU development VM the same code ran up to 1.6x slower from one
hour to the next at the same load average, while these probes showed the clock steady (a
dependent multiply-add at ~1.9 ns) and the memory latency moving (a cache-missing load 102-142
ns), though not in step with the suites' swings.

Two numba probes: a chain of dependent multiply-adds (the core's clock) and a chain of
dependent loads through a scattered cycle over 64 MB, larger than the last-level cache (memory
latency, which other tenants' traffic moves)."""
from __future__ import annotations

import os
import time

import numpy as np
from numba import njit

MEMORY_BYTES = 64 << 20


@njit(cache=True)
def _multiply_add_chain(n: int) -> float:
    x = 1.0
    for _ in range(n):
        x = x * 1.0000001 + 1e-9
    return x


@njit(cache=True)
def _load_chain(successor: np.ndarray, n: int) -> int:
    j = 0
    for _ in range(n):
        j = successor[j]
    return j


def _scattered_cycle(n: int) -> np.ndarray:
    """successor[i] = (a i + c) mod n, one cycle through all n indices (n a power of two: a full-
    period linear congruential step, Hull-Dobell), neighbours far apart: no prefetcher follows it."""
    a, c = 2_891_336_453, 12_345  # a = 1 mod 4, c odd
    return ((np.arange(n, dtype=np.uint64) * np.uint64(a) + np.uint64(c)) % np.uint64(n)).astype(np.int32)


def machine_state(multiply_adds: int = 20_000_000, loads: int = 2_000_000) -> dict:
    """CPU nanoseconds per dependent multiply-add and per dependent load from memory, and the
    1-minute load average."""
    successor = _scattered_cycle(MEMORY_BYTES // 4)
    _multiply_add_chain(10)  # compile, or load from numba's cache
    _load_chain(successor, 10)
    t = time.process_time()
    _multiply_add_chain(multiply_adds)
    compute = (time.process_time() - t) / multiply_adds
    t = time.process_time()
    _load_chain(successor, loads)
    memory = (time.process_time() - t) / loads
    return {"multiply_add_ns": round(compute * 1e9, 2), "memory_load_ns": round(memory * 1e9, 1),
            "load_average_1m": round(os.getloadavg()[0], 2)}
