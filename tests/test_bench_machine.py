"""The machine-state probes that `osd bench` records after each suite."""
from __future__ import annotations

import numpy as np

from discovery.cli.bench import load_suite


def _machine():
    load_suite("backtest")  # puts the checkout's benchmarks on the path
    from benchmarks import _machine

    return _machine


def test_the_memory_probe_walks_one_cycle_through_every_index():
    machine = _machine()
    n = 1 << 12
    successor = machine._scattered_cycle(n)
    assert np.array_equal(np.sort(successor), np.arange(n))  # a permutation
    j, steps = 0, 0
    while True:
        j, steps = successor[j], steps + 1
        if j == 0:
            break
    assert steps == n  # one cycle: a chain of n dependent loads visits all of memory
    assert np.median(np.abs(np.diff(successor.astype(np.int64)))) > n // 8  # neighbours far apart


def test_machine_state_reports_positive_latencies():
    state = _machine().machine_state(multiply_adds=100_000, loads=100_000)
    assert state["multiply_add_ns"] > 0
    assert state["memory_load_ns"] > state["cache_load_ns"] > 0
    assert set(state) == {"multiply_add_ns", "cache_load_ns", "memory_load_ns", "load_average_1m"}
