"""The state of the (shared, virtual) machine while a suite ran, so figures from different
runs can be compared: on the 2-vCPU development VM the same code ran up to 2.3x slower from one
minute to the next at the same load average.

Three numba probes: a chain of dependent multiply-adds (the core's clock: steady at ~1.9 ns), a
chain of dependent loads through a scattered cycle over 256 KB, inside this core's private
level-2 cache, and the same over 64 MB, larger than the last-level cache (memory latency). The
cache probe is the one that moves with the suites (5.4-14.6 ns while the backtest kernel moved
102-240 ns a genome-day, Spearman 0.68; BENCHMARKS.md): a private cache only gets slower when
another tenant shares the physical core, so the swings are the host's, not the code's."""
from __future__ import annotations

import os
import time

import numpy as np
from numba import njit

CACHE_BYTES = 256 << 10
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


def _ns_per_load(successor: np.ndarray, loads: int) -> float:
    _load_chain(successor, min(loads, len(successor)))  # compile or load from numba's cache; warm the cycle
    t = time.process_time()
    _load_chain(successor, loads)
    return (time.process_time() - t) / loads * 1e9


def machine_state(multiply_adds: int = 20_000_000, loads: int = 2_000_000) -> dict:
    """CPU nanoseconds per dependent multiply-add, per dependent load from the core's level-2
    cache and per dependent load from memory, and the 1-minute load average."""
    _multiply_add_chain(10)  # compile, or load from numba's cache
    t = time.process_time()
    _multiply_add_chain(multiply_adds)
    compute = (time.process_time() - t) / multiply_adds
    cache = _ns_per_load(_scattered_cycle(CACHE_BYTES // 4), loads)
    memory = _ns_per_load(_scattered_cycle(MEMORY_BYTES // 4), loads)
    return {"multiply_add_ns": round(compute * 1e9, 2), "cache_load_ns": round(cache, 2),
            "memory_load_ns": round(memory, 1), "load_average_1m": round(os.getloadavg()[0], 2)}
