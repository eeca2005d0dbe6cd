"""Shard actors and a pool of evaluator actors, with a Ray-backed ordered, batched ``map``.

* A :class:`ChainShard` actor per shard loads its slice of the store once; ``load()`` is an
  actor task, so the resulting object (the compact chain index) is owned by the driver and
  lives in the object store; the actor is restartable, so a lost node's shards are rebuilt
  by lineage reconstruction.
* :class:`Evaluator` actors, one per CPU of every node, fetch each shard object once (the
  arrays are read zero-copy from the node's object store and stay pinned while cached) and
  run batches of work through a plain module-level function.
* :class:`RayMap` cuts the items into batches of at least ``min_task_seconds`` of work,
  keeps every evaluator busy, retries a batch whose evaluator died on another one, and
  returns results in input order, so the result never depends on scheduling.
"""
from __future__ import annotations

import importlib
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import ray
from ray.exceptions import RayActorError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


def resolve(path: str) -> Callable:
    """``"package.module:function"`` -> the function (plain references pickle cleanly)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class ShardSpec:
    """One shard of the store: an underlying over a date span, built by ``loader(spec)``."""

    dataset: str
    underlying: str
    start: str | None
    end: str | None
    loader: str  # "module:function" taking this spec

    @property
    def name(self) -> str:
        return f"shard:{self.underlying}:{self.start or 'begin'}:{self.end or 'end'}"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class ChainShard:
    def __init__(self, spec: ShardSpec):
        self.spec = spec

    def load(self) -> Any:
        return resolve(self.spec.loader)(self.spec)


@ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=-1)
class Evaluator:
    """Runs batches through ``fn(shards: dict[str, Any], batch: list) -> list``."""

    def __init__(self, fn_path: str):
        self.fn = resolve(fn_path)
        self.shards: dict[str, Any] = {}
        self.fetches: Counter = Counter()

    def run(self, shard_refs: dict[str, ray.ObjectRef], batch: list) -> tuple[list, float]:
        for name, ref in shard_refs.items():
            if name not in self.shards:
                self.shards[name] = ray.get(ref)
                self.fetches[name] += 1
        t0 = time.perf_counter()
        out = self.fn(self.shards, batch)
        return out, time.perf_counter() - t0

    def stats(self) -> dict:
        return {"node_id": ray.get_runtime_context().get_node_id(), "fetches": dict(self.fetches)}


def publish_shards(specs: Sequence[ShardSpec]) -> tuple[list, dict[str, ray.ObjectRef]]:
    """Start one named shard actor per spec (spread over the nodes) and load every shard."""
    actors = [
        ChainShard.options(name=spec.name, scheduling_strategy="SPREAD", get_if_exists=True).remote(spec)
        for spec in specs
    ]
    refs = {spec.name: actor.load.remote() for spec, actor in zip(specs, actors)}
    ray.wait(list(refs.values()), num_returns=len(refs), fetch_local=False)
    return actors, refs


class RayMap:
    """An ordered ``map(items) -> results`` over a pool of evaluator actors.

    ``fn_path`` names the batch function run on the workers; ``shard_refs`` are the shard
    objects it reads. Batches are sized from measured time per item so that each task holds
    at least ``min_task_seconds`` of work while every evaluator still gets work.
    """

    def __init__(self, fn_path: str, shard_refs: dict[str, ray.ObjectRef], *,
                 min_task_seconds: float = 0.1, max_retries: int = 3, workers: int | None = None):
        self.fn_path = fn_path
        self.shard_refs = shard_refs
        self.min_task_seconds = min_task_seconds
        self.max_retries = max_retries
        self.seconds_per_item: float | None = None
        self.busy_seconds = 0.0
        self.wall_seconds = 0.0
        self.evaluators = self._spawn(workers)

    def _spawn(self, workers: int | None) -> list:
        actors = []
        for node in sorted(ray.nodes(), key=lambda n: n["NodeID"]):
            if not node["Alive"]:
                continue
            cpus = int(node["Resources"].get("CPU", 0))
            for i in range(cpus):
                if workers is not None and len(actors) >= workers:
                    break
                actors.append(Evaluator.options(
                    name=f"evaluator:{node['NodeID'][:8]}:{i}",
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=True),
                ).remote(self.fn_path))
        if not actors:
            raise RuntimeError("the Ray cluster has no CPUs for evaluators")
        return actors

    def batch_size(self, n_items: int) -> int:
        """Items per task: enough for ``min_task_seconds`` of work, but no more than keeps
        every evaluator busy (load balance beats the last bit of overhead)."""
        per_evaluator = max(1, math.ceil(n_items / len(self.evaluators)))
        if not self.seconds_per_item:
            return min(per_evaluator, 8)  # probe with small batches until the cost is measured
        return min(per_evaluator, max(1, math.ceil(self.min_task_seconds / self.seconds_per_item)))

    def __call__(self, items: Sequence) -> list:
        t0 = time.perf_counter()
        items = list(items)
        results: list = [None] * len(items)
        size = self.batch_size(len(items))
        pending_batches = [(i, items[i:i + size]) for i in range(0, len(items), size)]
        attempts: Counter = Counter()
        idle = list(range(len(self.evaluators)))
        inflight: dict[ray.ObjectRef, tuple[int, int, list]] = {}
        measured_items, measured_seconds = 0, 0.0
        while pending_batches or inflight:
            while pending_batches and idle:
                start, batch = pending_batches.pop(0)
                worker = idle.pop(0)
                ref = self.evaluators[worker].run.remote(self.shard_refs, batch)
                inflight[ref] = (worker, start, batch)
            done, _ = ray.wait(list(inflight), num_returns=1)
            worker, start, batch = inflight.pop(done[0])
            try:
                out, seconds = ray.get(done[0])
            except RayActorError:
                attempts[start] += 1
                if attempts[start] > self.max_retries:
                    raise
                pending_batches.insert(0, (start, batch))
                self.evaluators[worker] = Evaluator.options(scheduling_strategy="SPREAD").remote(self.fn_path)
                idle.append(worker)
                continue
            results[start:start + len(batch)] = out
            measured_items += len(batch)
            measured_seconds += seconds
            idle.append(worker)
        self.busy_seconds += measured_seconds
        self.wall_seconds += time.perf_counter() - t0
        if measured_items:
            self.seconds_per_item = measured_seconds / measured_items
        return results

    def stats(self) -> list[dict]:
        return ray.get([e.stats.remote() for e in self.evaluators])
