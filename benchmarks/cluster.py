"""Distributed evaluation: the seed-sized discovery run on Ray, worker scaling and Ray overhead.

    osd bench --suite cluster [--quick]

The run is ``configs/spy_2020_2024.yaml`` (five years of synthetic SPY, population 100 x 50
generations), each time end to end on a fresh private local Ray: with 1 evaluator and with 2
(every core of the 2-core development machine), ``REPEATS`` times each, interleaved, best
time kept (the machine is shared). Market synthesis is excluded (cached in runs/data, timed separately).

The issue's acceptance figures come first:

* ``seed_run_wall_s``: the 2-evaluator run end to end, Ray start-up included.
* ``speedup_2_vs_1``: the same end-to-end wall time, 1 evaluator over 2.
* ``ray_overhead_share``: (evaluators x wall time inside map calls - evaluation time measured
  inside the evaluators) / evaluation time, for the 2-evaluator run: scheduling, transfers and
  evaluators idle at the end of a generation. The one-off warm-up (evaluators fetching the
  shard before their first task) is kept apart and printed as ``evaluator_warm_up_s_2_workers``.

Then the same speed-up over narrower spans: ``search`` (``discover`` alone: Ray start-up
excluded) and ``generations`` (generations 1..N, after generation 0, which also pays the one-off
shard load, evaluator start-up and numba cache load), the driver's own work (search time outside
map calls and warm-up), and the load average at start and end.

Wall times on a shared machine measure the other users as much as this code, so each run is
also accounted in CPU time, which their load barely moves: all CPU the run used (driver, and
every process of its private Ray cluster, read from /proc), the part the evaluators spent
evaluating, and from the 1-worker run the speed-up Amdahl's law would allow two evaluators if all
other CPU work stayed serial. ``foreign_cpu_share_*`` is the CPU other processes used meanwhile,
as a share of the machine's cores: near 0, the wall figures are a quiet machine's; well above 0,
trust the CPU figures. ``numba_compiles_in_evaluators`` (per run) checks that the evaluators
load the kernels from numba's cache (0) instead of compiling them (a cold cache: the first run
after the kernels' source changed).
Quick mode runs 10 generations of a population of 40, once each.
"""
from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path

from cluster.executor import ray_executor
from discovery.config import load_config
from discovery.run import dataset_path, discover

REPO = Path(__file__).resolve().parents[1]
REPEATS = 2


def _config(quick: bool):
    overrides = {"search.population": 40, "search.generations": 10} if quick else None
    return load_config(REPO / "configs" / "spy_2020_2024.yaml", overrides)


TICKS = os.sysconf("SC_CLK_TCK")


def _machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores, all processes) since boot."""
    user, nice, system, idle, iowait, *rest = (int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:])
    return (user + nice + system + sum(rest[:3])) / TICKS  # irq, softirq, steal


def _descendants_cpu_s() -> float:
    """CPU seconds of this process's live descendants (the private Ray cluster: GCS, raylet,
    workers, evaluator and shard actors), each since it started."""
    parent, cpu = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # exited meanwhile
            continue
        pid = int(stat.parent.name)
        parent[pid], cpu[pid] = int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS
    ours, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier} - ours
        ours |= frontier
    return sum(cpu[pid] for pid in ours)


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed_run(config, workers: int, out: Path) -> dict:
    generation_done: dict[int, float] = {}
    t0, busy0, driver0 = time.perf_counter(), _machine_busy_s(), _own_cpu_s()
    with ray_executor(workers, address="local") as executor:
        started = time.perf_counter()
        result = discover(config, out, map_fn=executor,
                          on_generation=lambda record: generation_done.setdefault(record["generation"], time.perf_counter()))
        search_s = time.perf_counter() - started
        overhead = executor.overhead()
        cluster_cpu = _descendants_cpu_s()
    wall = time.perf_counter() - t0
    run_cpu = _own_cpu_s() - driver0 + cluster_cpu
    return {
        "wall_s": wall,
        "cpu_s": run_cpu,
        "driver_cpu_s": _own_cpu_s() - driver0,
        "evaluation_cpu_s": overhead["evaluation_cpu_s"],
        "numba_compiles": overhead["numba_compiles"],
        # other processes' CPU while this run ran, as a share of the machine's cores: ~0 on a quiet machine
        "foreign_cpu_share": max(0.0, _machine_busy_s() - busy0 - run_cpu) / (wall * os.cpu_count()),
        "search_s": search_s,
        "generations_s": generation_done[max(generation_done)] - generation_done[0],
        "workers": overhead["workers"],
        "evaluations": result["n_trials"],
        "overhead_share": overhead["overhead_share"],
        "warm_up_s": overhead["warm_up_s"],
        # the driver's own work: search time outside map calls and the evaluators' warm-up
        "driver_s": search_s - overhead["dispatch_wall_s"] - overhead["warm_up_s"],
    }


def _best_of(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["wall_s"])


def run(quick: bool = False) -> dict:
    config = _config(quick)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    dataset_path(config)  # synthesize once (cached), outside the timed runs
    synth_s = time.perf_counter() - t0
    repeats = 1 if quick else REPEATS
    runs: dict[int, list] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):  # interleaved, so a change in the machine's load hits both settings
            for workers in runs:
                runs[workers].append(_timed_run(config, workers, Path(tmp) / f"{workers}-{i}"))
    one, two = _best_of(runs[1]), _best_of(runs[2])
    ratio = lambda key: round(one[key] / two[key], 2)  # noqa: E731
    return {
        "config": "configs/spy_2020_2024.yaml" + (" (quick: pop 40 x 10 gens)" if quick else ""),
        "seed_run_wall_s": round(two["wall_s"], 1),
        "speedup_2_vs_1": ratio("wall_s"),
        "ray_overhead_share": round(two["overhead_share"], 3),
        "wall_s_1_worker": round(one["wall_s"], 1),
        "search_s_1_worker": round(one["search_s"], 1),
        "search_s_2_workers": round(two["search_s"], 1),
        "speedup_2_vs_1_search": ratio("search_s"),
        "generations_s_1_worker": round(one["generations_s"], 1),
        "generations_s_2_workers": round(two["generations_s"], 1),
        "speedup_2_vs_1_generations": ratio("generations_s"),
        "ray_overhead_share_1_worker": round(one["overhead_share"], 3),
        "evaluator_warm_up_s_2_workers": round(two["warm_up_s"], 1),
        "driver_s_2_workers": round(two["driver_s"], 1),
        # CPU accounting, robust to other processes' load (wall figures are not): all CPU the run
        # used (driver and every Ray process), the part spent evaluating, and the speed-up that
        # Amdahl's law allows 2 evaluators if everything else stayed serial (1-worker run's CPU)
        "cpu_s_1_worker": round(one["cpu_s"], 1),
        "cpu_s_2_workers": round(two["cpu_s"], 1),
        "evaluation_cpu_s_1_worker": round(one["evaluation_cpu_s"], 1),
        "evaluation_cpu_s_2_workers": round(two["evaluation_cpu_s"], 1),
        "driver_cpu_s_2_workers": round(two["driver_cpu_s"], 1),
        "amdahl_speedup_2_vs_1_from_cpu": round(
            one["cpu_s"] / (one["cpu_s"] - one["evaluation_cpu_s"] / 2), 2),
        # > 0: other processes ran meanwhile and the wall figures above are not a quiet machine's
        "foreign_cpu_share_1_worker": round(one["foreign_cpu_share"], 2),
        "foreign_cpu_share_2_workers": round(two["foreign_cpu_share"], 2),
        # kernels the evaluators compiled instead of loading from numba's cache (0: cache hit)
        "numba_compiles_in_evaluators": [r["numba_compiles"] for r in runs[1] + runs[2]],
        "distinct_genomes_evaluated": two["evaluations"],
        "evaluations_per_s_2_workers": round(two["evaluations"] / two["search_s"], 1),
        "runs_per_setting_best_kept": repeats,
        "market_synthesis_s": round(synth_s, 1),
        "load_average_1_5_15_min_before": [round(x, 2) for x in load_before],
        "load_average_1_5_15_min_after": [round(x, 2) for x in os.getloadavg()],
    }
