"""The Ray executor behind ``osd discover --executor ray``: the search's ``map_fn`` on a cluster.

The search calls ``map_fn(fn, batches)`` with ``fn`` a picklable ``functools.partial`` of a
discovery evaluation function bound to its :class:`~discovery.evaluate.EvalContext`. This
executor

1. publishes the context's market once per run through a restartable shard actor
   (:func:`cluster.pool.publish_shards`): the compact chain index lives in the object store,
   owned by the driver;
2. regroups the genomes of all batches into tasks sized for the cluster (``fn`` is elementwise)
   and sends each to an evaluator actor, which fetches the market once per node, installs it
   as the process's market for that context (``discovery.evaluate.install_market``) and runs
   ``fn`` unchanged on the task's genomes, so each genome gets exactly what the serial map gives.
"""
from __future__ import annotations

import contextlib
import itertools
from functools import partial
from typing import Callable, Iterable, Iterator

from cluster.pool import MIN_TASK_SECONDS, RayMap, ShardSpec, publish_shards
from cluster.runtime import ray_session


def _context_of(fn: Callable):
    """The EvalContext an evaluation partial is bound to."""
    from discovery.evaluate import EvalContext

    context = fn.args[0] if isinstance(fn, partial) and fn.args else None
    if not isinstance(context, EvalContext):
        raise TypeError(f"the Ray executor maps discovery evaluation partials, got {fn!r}")
    return context


def load_context_market(spec: ShardSpec):
    """Shard loader (runs in the shard actor): the market of the context the spec names."""
    from discovery.evaluate import load_market

    return load_market(spec.payload)


def evaluate_with_market(fn: Callable, shard_name: str, shards: dict, genomes: list) -> list:
    """Worker side: make the fetched market this process's market for fn's context, then run fn
    on the genomes as one batch."""
    from discovery.evaluate import install_market

    install_market(_context_of(fn), shards[shard_name])
    return fn(genomes)


class RayExecutor:
    """A ``map_fn`` whose batches run on Ray evaluator actors, in input order."""

    def __init__(self, workers: int | None = None, min_task_seconds: float = MIN_TASK_SECONDS):
        self.workers = workers
        self.min_task_seconds = min_task_seconds
        self.maps: dict = {}      # context -> RayMap over that context's shard
        self.shard_names: dict = {}  # context -> the name of its shard
        self.shard_actors: list = []

    def _map_for(self, context) -> RayMap:
        if context not in self.maps:
            spec = ShardSpec(dataset=context.dataset, underlying=context.underlying, start=None, end=None,
                             loader="cluster.executor:load_context_market", payload=context)
            actors, refs = publish_shards([spec])
            self.shard_actors += actors
            # the evaluators start while the shard loads, then fetch it before their first task
            self.maps[context] = RayMap(refs, workers=self.workers, min_task_seconds=self.min_task_seconds,
                                        preload=[type(context).__module__])  # the evaluation stack
            self.shard_names[context] = spec.name
        return self.maps[context]

    def __call__(self, fn: Callable, batches: Iterable[list]) -> list:
        """``fn`` over ``batches``, one result list per batch. The evaluation functions are
        elementwise, so the genomes are regrouped into tasks sized for the cluster, whatever
        batch size the search used."""
        context = _context_of(fn)
        ray_map = self._map_for(context)
        batches = list(batches)
        records = ray_map(partial(evaluate_with_market, fn, self.shard_names[context]),
                          [genome for batch in batches for genome in batch])
        ends = list(itertools.accumulate(len(batch) for batch in batches))
        return [records[end - len(batch):end] for batch, end in zip(batches, ends)]

    def overhead(self) -> dict:
        """Evaluators, evaluation seconds measured inside them, driver seconds spent in map calls,
        the overhead share (evaluator time not spent evaluating over evaluating time, within map
        calls), the one-off warm-up (new evaluators fetching the shards) kept apart from it, the
        evaluators' CPU seconds in tasks and the kernels they compiled instead of loading them
        from numba's cache."""
        workers = sum(len(m.evaluators) for m in self.maps.values())
        busy = sum(m.busy_seconds for m in self.maps.values())
        wall = sum(m.wall_seconds for m in self.maps.values())
        share = (workers * wall - busy) / busy if busy else float("nan")
        stats = [s for m in self.maps.values() for s in m.stats()]
        return {"workers": workers, "evaluation_s": busy, "dispatch_wall_s": wall, "overhead_share": share,
                "warm_up_s": sum(m.warm_up_seconds for m in self.maps.values()),
                # CPU: a loaded machine preempts the evaluators (evaluation CPU < evaluation_s)
                "evaluation_cpu_s": sum(m.busy_cpu_seconds for m in self.maps.values()),
                "numba_compiles": sum(s["numba_compiles"] for s in stats)}


@contextlib.contextmanager
def ray_executor(workers: int | None = None, address: str | None = None) -> Iterator[RayExecutor]:
    """Connect to (or start) Ray and yield the executor; ``workers`` caps the evaluator actors."""
    with ray_session(address):
        yield RayExecutor(workers)
