"""Distributed evaluation: the seed-sized discovery run on Ray, worker scaling and Ray overhead.

    osd bench --suite cluster [--quick]

* ``seed_run_wall_s``: ``configs/spy_2020_2024.yaml`` (five years of synthetic SPY, population
  100 x 50 generations) end to end on a fresh local Ray with every core, Ray start-up included
  (market synthesis excluded: it is cached in runs/data and timed separately).
* ``speedup_2_vs_1``: the same search with 2 evaluators vs 1, each on a fresh local Ray, timed
  from the first generation (start-up excluded), in the same run.
* ``ray_overhead_share``: worker time not spent evaluating (scheduling, transfers, idle at the
  end of a generation) over evaluation time: (workers x map wall - evaluator busy) / busy.
Quick mode runs 10 generations of a population of 40.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from cluster.executor import ray_executor
from discovery.config import load_config
from discovery.run import dataset_path, discover

REPO = Path(__file__).resolve().parents[1]


def _config(quick: bool):
    overrides = {"search.population": 40, "search.generations": 10} if quick else None
    return load_config(REPO / "configs" / "spy_2020_2024.yaml", overrides)


def _timed_run(config, workers: int | None, out: Path) -> dict:
    t0 = time.perf_counter()
    with ray_executor(workers, address="local") as executor:
        started = time.perf_counter()
        result = discover(config, out, map_fn=executor)
        search_s = time.perf_counter() - started
        overhead = executor.overhead()
    return {
        "wall_s": time.perf_counter() - t0,
        "search_s": search_s,
        "workers": overhead["workers"],
        "evaluations": result["n_trials"],
        "overhead_share": overhead["overhead_share"],
    }


def run(quick: bool = False) -> dict:
    config = _config(quick)
    t0 = time.perf_counter()
    dataset_path(config)  # synthesize once (cached), outside the timed runs
    synth_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        full = _timed_run(config, None, Path(tmp) / "all")
        one = _timed_run(config, 1, Path(tmp) / "one")
        two = _timed_run(config, 2, Path(tmp) / "two")
    return {
        "config": "configs/spy_2020_2024.yaml" + (" (quick: pop 40 x 10 gens)" if quick else ""),
        "market_synthesis_s": round(synth_s, 1),
        "seed_run_wall_s": round(full["wall_s"], 1),
        "seed_run_workers": full["workers"],
        "distinct_genomes_evaluated": full["evaluations"],
        "evaluations_per_s": round(full["evaluations"] / full["search_s"], 1),
        "search_s_1_worker": round(one["search_s"], 1),
        "search_s_2_workers": round(two["search_s"], 1),
        "speedup_2_vs_1": round(one["search_s"] / two["search_s"], 2),
        "ray_overhead_share": round(full["overhead_share"], 3),
    }
