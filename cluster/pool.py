"""Shard actors and a pool of evaluator actors, with an ordered, batched ``map`` over them.

* A :class:`ChainShard` actor per shard loads its slice of the store once. ``load()`` is an
  actor task, so its result (the compact chain index, plain read-only arrays) is owned by the
  driver and lives in the object store; the actor is restartable, so the shard of a lost node
  is rebuilt by lineage reconstruction instead of being lost.
* :class:`Evaluator` actors, one per CPU of every node, fetch each shard object once (the arrays
  are read zero-copy from the node's object store and stay pinned while cached) and run tasks
  through a plain picklable, elementwise function ``task(shards, items) -> results``, with
  numba's threads limited to the actor's CPUs (one evaluator per CPU, not one per CPU squared).
* :class:`RayMap` cuts the items into tasks by guided self-scheduling (large tasks first, then
  ever smaller ones, never below ``min_task_seconds`` of measured work, so the evaluators finish
  together), keeps two tasks queued on every evaluator (it never waits on the driver between
  tasks), retries the task of a dead evaluator on a fresh one, and returns results in input
  order, so the outcome never depends on scheduling.
"""
from __future__ import annotations

import importlib
import itertools
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import ray
from ray.exceptions import RayActorError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from backtest.errors import UserError


_pool_ids = itertools.count()
_shard_ids = itertools.count()
PLACEMENT_SECONDS = 60.0   # how long a new evaluator may take to start
QUEUE_DEPTH = 2            # tasks queued on an evaluator at once: one running, one ready to start
# Smallest task, in measured seconds of work. Each task costs its evaluator a few milliseconds
# between tasks (more under load) even with the next one queued; a larger floor leaves one
# evaluator idle longer while the other finishes a generation's last task. Measured on
# generation-sized calls of the seed run (184 genomes, 2 evaluators, load average ~4.5),
# overhead share: 0.096 at 20 ms, 0.089 at 50 ms, 0.17 at 200 ms.
MIN_TASK_SECONDS = 0.05
NODE_CHECK_SECONDS = 2.0  # how often a waiting driver checks that busy evaluators' nodes are alive


def resolve(path: str) -> Callable:
    """``"package.module:function"`` -> the function."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class ShardSpec:
    """One shard of the store: an underlying over a date span, built by ``loader(spec)``."""

    dataset: str
    underlying: str
    start: str | None
    end: str | None
    loader: str            # "module:function" taking this spec
    payload: Any = None    # whatever else the loader needs (plain, picklable)

    @property
    def name(self) -> str:
        return f"shard:{self.underlying}:{self.start or 'first'}:{self.end or 'last'}"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class ChainShard:
    def __init__(self, spec: ShardSpec):
        self.spec = spec

    def load(self) -> Any:
        try:
            return resolve(self.spec.loader)(self.spec)
        except Exception as exc:  # name the shard and the node: the data path may be unreadable there only
            node = ray.get_runtime_context().get_node_id()[:8]
            raise UserError(f"{self.spec.name}: cannot load {self.spec.dataset} on node {node}: {exc}") from None


# Not restarted by Ray: a restart could wait forever for a CPU that left with its node. The
# driver requeues the batch of a dead evaluator and tops the pool up to the CPUs that exist.
@ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)
class Evaluator:
    """Runs ``task(shards, items)`` on a list of items; shards are fetched once and cached."""

    def __init__(self):
        self.shards: dict[str, Any] = {}
        self.fetches: Counter = Counter()
        self.cpus = max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)))

    def fetch(self, shard_refs: dict[str, Any], preload: Sequence[str] = ()) -> None:
        """Import the ``preload`` modules (what the tasks will run), then fetch the shards not
        cached yet (refs arrive wrapped, so Ray does not resolve them). The imports overlap the
        shard loads instead of following them (the shard's unpickling would import them)."""
        for module in preload:
            importlib.import_module(module)
        for name, (ref,) in shard_refs.items():
            if name not in self.shards:
                try:
                    self.shards[name] = ray.get(ref)
                except RayTaskError as exc:  # the shard could not load: pass its one-line error on
                    raise exc.cause from None
                self.fetches[name] += 1

    def run(self, task: Callable, shard_refs: dict[str, Any], items: list) -> tuple[list, float, float]:
        """``task(shards, items)``, its wall seconds and this process's CPU seconds meanwhile."""
        import numba

        numba.set_num_threads(min(self.cpus, numba.config.NUMBA_NUM_THREADS))  # thread-local: set per task
        self.fetch(shard_refs)
        t0, cpu0 = time.perf_counter(), time.process_time()
        out = task(self.shards, items)
        return out, time.perf_counter() - t0, time.process_time() - cpu0

    def stats(self) -> dict:
        return {"node_id": ray.get_runtime_context().get_node_id(), "fetches": dict(self.fetches),
                "numba_compiles": numba_compiles()}


def numba_compiles() -> int:
    """Kernels this process compiled instead of loading from numba's on-disk cache (signatures
    missed, over the loaded ``*_nb`` kernel modules): 0 once the cache is warm."""
    from numba.core.registry import CPUDispatcher

    return sum(sum(kernel.stats.cache_misses.values())
               for name, module in list(sys.modules.items()) if name.endswith("_nb")
               for kernel in vars(module).values() if isinstance(kernel, CPUDispatcher))


def publish_shards(specs: Sequence[ShardSpec]) -> tuple[list, dict[str, ray.ObjectRef]]:
    """One named shard actor per spec, spread over the nodes; every shard loaded once. Returns at
    once: the loads run while the evaluators start, and an evaluator's first fetch waits for them."""
    # numbered: an earlier executor's actor of the same shard may still be alive in this job
    actors = [ChainShard.options(name=f"{spec.name}#{next(_shard_ids)}", scheduling_strategy="SPREAD").remote(spec)
              for spec in specs]
    refs = {spec.name: actor.load.options(name=f"load {spec.name}").remote() for spec, actor in zip(specs, actors)}
    return actors, refs


def task_plan(n_items: int, n_evaluators: int, seconds_per_item: float | None,
              min_task_seconds: float) -> list[tuple[int, int]]:
    """``(start, size)`` of each task, in item order, by guided self-scheduling: each task takes a
    ``1 / (2 * n_evaluators)`` share of the items still to cut, but at least ``min_task_seconds``
    of work at the measured ``seconds_per_item`` (unmeasured, ``None``: at least one item); the
    first tasks are large, the last ones small enough that the evaluators finish together. The
    floor never exceeds an even share of the items, so a call smaller than ``n_evaluators`` floors
    (e.g. a generation's few fresh genomes) still keeps every evaluator busy."""
    floor = max(1, math.ceil(min_task_seconds / seconds_per_item)) if seconds_per_item else 1
    floor = min(floor, max(1, math.ceil(n_items / n_evaluators)))
    plan, start = [], 0
    while start < n_items:
        left = n_items - start
        size = min(left, max(floor, math.ceil(left / (2 * n_evaluators))))
        plan.append((start, size))
        start += size
    return plan


class RayMap:
    """An ordered ``map(task, items) -> results`` over a pool of evaluator actors; ``task(shards,
    items)`` must be elementwise (an item's result never depends on the other items of its task)."""

    def __init__(self, shard_refs: dict[str, ray.ObjectRef], *, workers: int | None = None,
                 min_task_seconds: float = MIN_TASK_SECONDS, max_retries: int = 3, preload: Sequence[str] = ()):
        self.shard_refs = {name: (ref,) for name, ref in shard_refs.items()}
        self.preload = tuple(preload)  # modules new evaluators import while the shards load
        self.min_task_seconds = min_task_seconds
        self.max_retries = max_retries
        self.seconds_per_item: float | None = None
        self.busy_seconds = 0.0   # evaluation time measured inside the evaluators
        self.busy_cpu_seconds = 0.0  # the evaluators' CPU time meanwhile (less than busy when preempted)
        self.warm_up_seconds = 0.0  # driver time spent having new evaluators fetch the shards
        self.wall_seconds = 0.0   # driver wall time spent in map calls, evaluator warm-ups excluded
        self.requeued = 0         # tasks retried after their evaluator died or its node left
        self.retired = 0          # evaluators dropped because they died or their node left
        self.pool_id = next(_pool_ids)
        self._names = itertools.count()
        self.workers = workers
        self.evaluators: list = []
        self.node_of: dict = {}   # evaluator -> the node it runs on
        self.warm: set = set()    # evaluators that hold the shards
        self._top_up()

    def _retire(self, evaluator) -> None:
        if evaluator in self.evaluators:
            self.evaluators.remove(evaluator)
            self.retired += 1

    def _top_up(self) -> None:
        """Drop the evaluators of departed nodes, then one evaluator per CPU of the live nodes
        (at most ``workers``), spread over the nodes."""
        alive = [n for n in ray.nodes() if n["Alive"]]  # one GCS query per map call
        alive_ids = {n["NodeID"] for n in alive}
        for evaluator in [e for e in self.evaluators if e in self.node_of and self.node_of[e] not in alive_ids]:
            self._retire(evaluator)
        cpus = sum(int(n["Resources"].get("CPU", 0)) for n in alive)
        wanted = min(cpus, self.workers) if self.workers is not None else cpus
        nodes = sorted((n for n in alive if n["Resources"].get("CPU")), key=lambda n: n["NodeID"])
        while len(self.evaluators) < wanted and nodes:
            node = nodes[len(self.evaluators) % len(nodes)]
            self.evaluators.append(Evaluator.options(
                name=f"evaluator-{self.pool_id}-{next(self._names)}",
                # soft + spill: a busy or departed target node sends the actor elsewhere instead of queueing it
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=True,
                                                                   _spill_on_unavailable=True),
            ).remote())
        missing = {e.stats.remote(): e for e in self.evaluators if e not in self.node_of}
        placed, unplaced = ray.wait(list(missing), num_returns=len(missing), timeout=PLACEMENT_SECONDS) \
            if missing else ([], [])
        for ref in placed:
            self.node_of[missing[ref]] = ray.get(ref)["node_id"]
        for ref in unplaced:  # no CPU for it after all (e.g. a node is leaving): do without
            self.evaluators.remove(missing[ref])
            ray.kill(missing[ref])
        if not self.evaluators:
            raise RuntimeError("no evaluator could be placed on the Ray cluster")
        self._warm_up([e for e in self.evaluators if e not in self.warm])

    def _warm_up(self, evaluators: list) -> None:
        """New evaluators fetch the shards before their first task (a one-off per evaluator, timed
        apart from the map calls); one that dies meanwhile is retired by the next call."""
        t0 = time.perf_counter()
        fetched = {e.fetch.options(name="fetch shards").remote(self.shard_refs, self.preload): e for e in evaluators}
        for ref, evaluator in fetched.items():
            try:
                ray.get(ref)
            except RayTaskError as exc:
                if isinstance(exc.cause, UserError):
                    raise exc.cause from None
                raise
            except RayActorError:
                continue
            self.warm.add(evaluator)
        self.warm_up_seconds += time.perf_counter() - t0

    def _lost(self, inflight: dict) -> list:
        """In-flight tasks whose evaluator's node has left the cluster. Ray does not always fail
        such a task (it may wait on a lost return object), so the driver gives up on it."""
        alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        return [ref for ref, (evaluator, _, _) in inflight.items() if self.node_of.get(evaluator) not in alive]

    def __call__(self, task: Callable, items: Sequence) -> list:
        items = list(items)
        if not items:  # e.g. a generation that injects no fresh genomes: no cluster round trip
            return []
        t0, warm_up_before = time.perf_counter(), self.warm_up_seconds
        self._top_up()
        results: list = [None] * len(items)
        todo = task_plan(len(items), len(self.evaluators), self.seconds_per_item, self.min_task_seconds)
        attempts: Counter = Counter()
        queued = {e: 0 for e in self.evaluators}   # tasks sent to each live evaluator, not yet back
        inflight: dict = {}
        done_items, done_seconds, done_cpu = 0, 0.0, 0.0
        while todo or inflight:
            # each evaluator holds up to QUEUE_DEPTH tasks, so it starts the next as soon as one ends;
            # dealt round-robin, so the large first tasks go to different evaluators
            free = [e for depth in range(QUEUE_DEPTH) for e in queued if queued[e] <= depth]
            for evaluator in free[:len(todo)]:
                start, size = todo.pop(0)
                ref = evaluator.run.options(name=f"evaluate {size} items").remote(
                    task, self.shard_refs, items[start:start + size])
                inflight[ref] = (evaluator, start, size)
                queued[evaluator] += 1
            if not inflight:
                raise RuntimeError("every evaluator died; the cluster has no CPUs left")
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=NODE_CHECK_SECONDS)
            for ref in [] if ready else self._lost(inflight):
                evaluator, start, size = inflight.pop(ref)
                ray.cancel(ref, force=True)
                self._requeue(evaluator, start, size, todo, attempts, queued)
            if not ready:
                continue
            evaluator, start, size = inflight.pop(ready[0])
            try:
                out, seconds, cpu_seconds = ray.get(ready[0])
            except RayTaskError as exc:  # a user error on a worker (e.g. unreadable data) stays one line
                if isinstance(exc.cause, UserError):
                    raise exc.cause from None
                raise
            except RayActorError:  # killed, or its node left: the task goes to another evaluator
                self._requeue(evaluator, start, size, todo, attempts, queued)
                continue
            if len(out) != size:
                raise RuntimeError(f"a task returned {len(out)} results for {size} items")
            results[start:start + size] = out
            done_items += size
            done_seconds += seconds
            done_cpu += cpu_seconds
            if evaluator in queued:
                queued[evaluator] -= 1
        self.busy_seconds += done_seconds
        self.busy_cpu_seconds += done_cpu
        self.wall_seconds += time.perf_counter() - t0 - (self.warm_up_seconds - warm_up_before)
        if done_items:
            self.seconds_per_item = done_seconds / done_items
        return results

    def _requeue(self, evaluator, start: int, size: int, todo: list, attempts: Counter, queued: dict) -> None:
        attempts[start] += 1
        self.requeued += 1
        if attempts[start] > self.max_retries:
            raise RuntimeError(f"items {start}..{start + size - 1} failed on {attempts[start]} evaluators")
        todo.insert(0, (start, size))
        queued.pop(evaluator, None)  # no more tasks for it; its other queued tasks come back failed too
        self._retire(evaluator)

    def stats(self) -> list[dict]:
        return ray.get([e.stats.remote() for e in self.evaluators])
