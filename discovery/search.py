"""The evolutionary search loop: (mu + lambda) with tournament selection, or NSGA-II.

The loop never imports Ray. It evaluates through an injectable ``map_fn`` with the contract of
the builtin ``map``:

    map_fn(evaluate_batch, batches) -> iterable of results, in the order of ``batches``

where each batch is a ``list[dict]`` of plain gene dicts (``SearchSpace.to_dict``) and
``evaluate_batch(batch) -> list[dict]`` returns one plain record per genome with at least the
keys named by the objectives (``fitness``, ``sharpe``, ``max_drawdown``, ``n_trades``).
``evaluate_batch`` must be picklable (a top-level function or a ``functools.partial`` of one) and
deterministic, so the run is identical for any map (serial, process pool, Ray) and any number of
workers: all randomness is drawn here, on the driver, from one ``random.Random(seed)``. It must
also be elementwise (a genome's record never depends on its batch mates), so a map may regroup
the genomes into batches of its own size.

Every canonical genome is evaluated once per run (``cache``, keyed by ``SearchSpace.key``). After
each generation the state is checkpointed (see ``save_checkpoint``) and ``on_generation(record)``
is called with that generation's statistics.
"""
from __future__ import annotations

import itertools
import math
import os
import pickle
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable

from deap import base, creator, tools

from backtest.errors import UserError
from discovery.operators import make_toolbox
from discovery.space import SearchSpace

CHECKPOINT_FORMAT = "osd-discovery-checkpoint/2"
# Objective -> DEAP weight (maximise +1, minimise -1); max_drawdown is a positive loss share.
OBJECTIVE_WEIGHTS = {"fitness": 1.0, "sharpe": 1.0, "max_drawdown": -1.0, "n_trades": 1.0}

MapFn = Callable[[Callable, Iterable], Iterable]


@dataclass
class SearchState:
    """Everything a resumed run needs; plain data only (pickled into checkpoints)."""
    config_digest: str
    generation: int = -1                      # last completed generation (0 = initial population)
    rng_state: Any = None
    population: list[tuple] = field(default_factory=list)
    cache: dict[str, dict] = field(default_factory=dict)   # key -> record (insertion = evaluation order)
    logbook: list[dict] = field(default_factory=list)
    log_bytes: int = 0                        # length of the evaluation log that holds ``cache``


def evaluation_log(path: Path) -> Path:
    """The append-only log of evaluations that belongs to the checkpoint at ``path`` (named so that
    it never passes for the checkpoint itself: k8s/discover-entry.sh resumes when one exists)."""
    return path.with_name("evaluations-" + path.name)


def save_checkpoint(state: SearchState, path: Path, logged: int) -> int:
    """Checkpoint ``state`` in time proportional to the evaluations made since the last save.

    The evaluations after the first ``logged`` cache entries are appended to the evaluation log
    (one pickle frame per save, after ``state.log_bytes``, so the part an earlier checkpoint points
    at is never rewritten); then the small state file (everything but the cache, plus the log's
    length) is replaced atomically (temp file in the same folder, then rename). A crash at any
    point leaves the previous checkpoint readable. Returns the number of cache entries logged.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(evaluation_log(path), "ab") as fh:
        fh.truncate(state.log_bytes)  # drop a frame a crash left without its state file
        pickle.dump(list(itertools.islice(state.cache.items(), logged, None)), fh, protocol=pickle.HIGHEST_PROTOCOL)
        state.log_bytes = fh.tell()
    payload = {"format": CHECKPOINT_FORMAT, **{k: v for k, v in state.__dict__.items() if k != "cache"},
               "evaluations": len(state.cache)}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".checkpoint-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(state.cache)


def load_checkpoint(path: Path, config_digest: str) -> SearchState:
    try:
        with open(path, "rb") as fh:
            payload = pickle.load(fh)
    except FileNotFoundError:
        raise UserError(f"cannot resume: no checkpoint at {path}") from None
    except (pickle.UnpicklingError, EOFError) as exc:
        raise UserError(f"cannot resume: {path} is not a readable checkpoint ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"cannot resume: {path} is not a {CHECKPOINT_FORMAT} checkpoint")
    if payload["config_digest"] != config_digest:
        raise UserError(f"cannot resume: {path} was written by a different config or seed "
                        f"(digest {payload['config_digest']}, this run {config_digest})")
    payload.pop("format")
    expected = payload.pop("evaluations")
    log = evaluation_log(path)
    cache: dict[str, dict] = {}
    try:
        with open(log, "rb") as fh:
            while len(cache) < expected and fh.tell() < payload["log_bytes"]:
                cache.update(pickle.load(fh))
    except FileNotFoundError:
        raise UserError(f"cannot resume: the evaluation log {log} of {path} is missing") from None
    except (pickle.UnpicklingError, EOFError) as exc:
        raise UserError(f"cannot resume: the evaluation log {log} is damaged ({exc})") from None
    if len(cache) != expected:
        raise UserError(f"cannot resume: the evaluation log {log} holds {len(cache)} evaluations, "
                        f"the checkpoint {path} expects {expected}")
    return SearchState(**payload, cache=cache)


def _fitness_class(weights: tuple[float, ...]):
    """DEAP creator classes, created once per weight vector, used only on the driver."""
    tag = "_".join("p" if w > 0 else "m" for w in weights)
    name = f"OSDFitness_{tag}"
    if not hasattr(creator, name):
        creator.create(name, base.Fitness, weights=weights)
        creator.create(f"OSDIndividual_{tag}", list, fitness=getattr(creator, name))
    return getattr(creator, f"OSDIndividual_{tag}")


class Search:
    def __init__(self, space: SearchSpace, evaluate_batch: Callable[[list[dict]], list[dict]], spec,
                 config_digest: str, map_fn: MapFn = map, checkpoint_path: Path | None = None,
                 on_generation: Callable[[dict], None] | None = None):
        self.space = space
        self.evaluate_batch = evaluate_batch
        self.spec = spec
        self.map_fn = map_fn
        self.checkpoint_path = checkpoint_path
        self.on_generation = on_generation
        self.objectives = tuple(spec.objectives)
        self.weights = tuple(OBJECTIVE_WEIGHTS[o] for o in self.objectives)
        self.individual = _fitness_class(self.weights)
        self.rng = random.Random(spec.seed)
        self.toolbox = make_toolbox(space, self.rng)
        self.state = SearchState(config_digest=config_digest)
        self.logged = 0  # cache entries already in the checkpoint's evaluation log

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, genomes: list[tuple]) -> int:
        """Evaluate the genomes not yet in the cache (each distinct key once); returns how many."""
        todo: dict[str, tuple] = {}
        for g in genomes:
            key = self.space.key(g)
            if key not in self.state.cache and key not in todo:
                todo[key] = g
        keys = list(todo)
        size = self.spec.batch_size
        batches = [[self.space.to_dict(todo[k]) for k in keys[i:i + size]] for i in range(0, len(keys), size)]
        records = [r for batch in self.map_fn(self.evaluate_batch, batches) for r in batch]
        if len(records) != len(keys):
            raise RuntimeError(f"evaluator returned {len(records)} records for {len(keys)} genomes")
        for key, record in zip(keys, records):
            self.state.cache[key] = {**record, "genome": list(todo[key])}
        return len(keys)

    def values(self, genome: tuple) -> tuple[float, ...]:
        record = self.state.cache[self.space.key(genome)]
        return tuple(float(record[o]) for o in self.objectives)

    def _wrap(self, genomes: list[tuple]) -> list:
        out = []
        for g in genomes:
            ind = self.individual(g)
            ind.fitness.values = self.values(g)
            out.append(ind)
        return out

    # ------------------------------------------------------------------ selection and variation
    def weighted(self, genome: tuple) -> tuple[float, ...]:
        """Objective values times their weights: larger is better, compared lexicographically (as DEAP)."""
        return tuple(v * w for v, w in zip(self.values(genome), self.weights))

    def tournament(self, population: list[tuple]) -> tuple:
        best = self.rng.choice(population)
        for _ in range(self.spec.tournament_size - 1):
            other = self.rng.choice(population)
            if self.weighted(other) > self.weighted(best):
                best = other
        return best

    def pick_parent(self, population: list[tuple]) -> tuple:
        # NSGA-II ranks by front and crowding at survival; parents are drawn uniformly (as DEAP's varOr).
        return self.tournament(population) if len(self.objectives) == 1 else self.rng.choice(population)

    def offspring(self, population: list[tuple]) -> list[tuple]:
        """lambda children: crossover with probability cxpb, mutation with mutpb, else a copy."""
        children = []
        for _ in range(self.spec.n_lambda):
            draw = self.rng.random()
            if draw < self.spec.cxpb:
                child, _ = self.toolbox.mate(self.pick_parent(population), self.pick_parent(population))
            elif draw < self.spec.cxpb + self.spec.mutpb:
                child = self.toolbox.mutate(self.pick_parent(population))
            else:
                child = self.pick_parent(population)
            children.append(self.space.canonical(child))
        return children

    def survivors(self, candidates: list[tuple]) -> list[tuple]:
        """The mu best distinct genomes ((mu + lambda) truncation, or NSGA-II fronts and crowding)."""
        distinct = list(dict.fromkeys(candidates))
        mu = self.spec.n_mu
        if len(self.objectives) == 1:
            order = sorted(range(len(distinct)), key=lambda i: (-self.weighted(distinct[i])[0], i))
            ranked = [distinct[i] for i in order]
            # niche cap: no structure type takes more than max_type_share of the places while
            # others wait, so one early winner cannot crowd the other families out
            cap = max(1, math.ceil(self.spec.max_type_share * mu))
            kept, waiting, per_type = [], [], {}
            for g in ranked:
                if per_type.get(g[0], 0) < cap:
                    kept.append(g)
                    per_type[g[0]] = per_type.get(g[0], 0) + 1
                else:
                    waiting.append(g)
            return (kept + waiting)[:mu] if len(kept) < mu else kept[:mu]
        return [tuple(ind) for ind in tools.selNSGA2(self._wrap(distinct), min(mu, len(distinct)))]

    def defend_diversity(self, population: list[tuple]) -> tuple[list[tuple], int, int]:
        """Fill missing places and, when diversity collapses, replace the worst share with random
        genomes; returns (population, genomes injected, evaluations run)."""
        mu = self.spec.n_mu
        population = list(population)
        n_new = mu - len(population)
        diversity = self.space.diversity(population)
        if diversity["mean_distance"] < self.spec.diversity_floor:
            n_new += int(math.ceil(self.spec.reinject_fraction * mu))
            population = population[:mu - n_new]
        fresh = [self.toolbox.random_genome() for _ in range(n_new)]
        return population + fresh, n_new, self.evaluate(fresh)

    def initial_population(self) -> list[tuple]:
        """Random genomes, structure types dealt round-robin so that every allowed type starts
        with its share of the population."""
        types = self.space.structure_types
        out = []
        for i in range(self.spec.population):
            g = self.toolbox.random_genome()
            out.append(self.space.canonical((types[i % len(types)],) + tuple(g[1:])))
        return out

    # ------------------------------------------------------------------ the loop
    def _record(self, generation: int, n_evals: int, elapsed: float, reinjected: int) -> dict:
        pop_values = [self.values(g)[0] for g in self.state.population]
        best_all = max(float(r[self.objectives[0]]) * self.weights[0] for r in self.state.cache.values())
        diversity = self.space.diversity(self.state.population)
        return {
            "generation": generation,
            "evaluations": n_evals,
            "distinct_evaluated": len(self.state.cache),
            "best": best_all * self.weights[0],
            "population_best": max(pop_values) if self.weights[0] > 0 else min(pop_values),
            "population_mean": sum(pop_values) / len(pop_values),
            "distinct_share": diversity["distinct_share"],
            "mean_distance": diversity["mean_distance"],
            "reinjected": reinjected,
            "elapsed_s": elapsed,
            "evals_per_s": n_evals / elapsed if elapsed > 0 else float("inf"),
        }

    def _finish_generation(self, generation: int, n_evals: int, started: float, reinjected: int) -> None:
        self.state.generation = generation
        self.state.rng_state = self.rng.getstate()
        record = self._record(generation, n_evals, time.perf_counter() - started, reinjected)
        self.state.logbook.append(record)
        if self.checkpoint_path is not None:
            self.logged = save_checkpoint(self.state, self.checkpoint_path, self.logged)
        if self.on_generation is not None:
            self.on_generation(record)

    def run(self, resume: SearchState | None = None) -> SearchState:
        if resume is not None:
            self.state = resume
            self.logged = len(resume.cache)
            self.rng.setstate(resume.rng_state)
        else:
            started = time.perf_counter()
            population = self.initial_population()
            n_evals = self.evaluate(population)
            self.state.population = self.survivors(population)
            self.state.population, reinjected, n_more = self.defend_diversity(self.state.population)
            self._finish_generation(0, n_evals + n_more, started, reinjected)
        for generation in range(self.state.generation + 1, self.spec.generations + 1):
            started = time.perf_counter()
            children = self.offspring(self.state.population)
            n_evals = self.evaluate(children)
            population = self.survivors(self.state.population + children)
            self.state.population, reinjected, n_more = self.defend_diversity(population)
            self._finish_generation(generation, n_evals + n_more, started, reinjected)
        return self.state

    def refine_regimes(self, size: int, entry_fingerprint: Callable[[tuple], Hashable] | None = None) -> int:
        """After the last generation, each of the ``size`` leaders (hall of fame) gated to every
        non-empty subset of its own entry-regime set: does its edge live in some regimes only? A
        broad, shallow search rarely tries that, and this categorical gene has only 2^R - 1 values
        (3 for calm/stressed). Widening a leader's set is left to the search: each variant is a
        trial like any other genome (cached, counted in the deflated Sharpe's N and V) and sits
        next to a leader's Sharpe, so the step spends trials only on the question it exists for.
        Deterministic (no random draw), so a resumed run refines identically. Returns the
        evaluations run.

        ``entry_fingerprint(genome)`` (optional) names the days a genome may enter on over the
        span the search evaluates (None: no day at all). A variant whose fingerprint matches its
        leader's or an earlier variant's would trade exactly like it there, and one that may
        never enter cannot trade: evaluating either adds a trial (raising N and, a near-clone of
        a leader, V) and no information, so they are skipped."""
        if not self.space.evolve_regimes or size <= 0:
            return 0
        variants = []
        for leader in self.hall_of_fame(size):
            own = leader[-1]
            seen = {entry_fingerprint(leader), None} if entry_fingerprint else set()
            for subset in (c for k in range(1, len(own)) for c in itertools.combinations(own, k)):
                variant = self.space.canonical(leader[:-1] + (subset,))
                if entry_fingerprint:
                    fingerprint = entry_fingerprint(variant)
                    if fingerprint in seen:
                        continue
                    seen.add(fingerprint)
                variants.append(variant)
        return self.evaluate(variants)

    # ------------------------------------------------------------------ results
    def best_per_structure(self, size: int) -> list[tuple]:
        """The best evaluated genome of each structure type, best first (first objective): the
        distinct alternatives the search chose between, for CSCV (near-clones of one winner
        would make the out-of-sample rank of the in-sample best a coin toss among equals)."""
        best: dict[str, tuple] = {}
        for record in self.state.cache.values():
            g = tuple(tuple(v) if isinstance(v, list) else v for v in record["genome"])
            if g[0] not in best or self.weighted(g)[0] > self.weighted(best[g[0]])[0]:
                best[g[0]] = g
        return sorted(best.values(), key=lambda g: -self.weighted(g)[0])[:size]

    def hall_of_fame(self, size: int) -> list[tuple]:
        """Best distinct genomes ever evaluated (DEAP HallOfFame, or the Pareto front for NSGA-II,
        ordered by the first objective), fed in evaluation order so ties resolve reproducibly."""
        everything = self._wrap([tuple(r["genome"]) for r in self.state.cache.values()])
        if len(self.objectives) == 1:
            hof = tools.HallOfFame(size)
            hof.update(everything)
            return [tuple(ind) for ind in hof]
        front = tools.ParetoFront()
        front.update(everything)
        ranked = sorted(front, key=lambda ind: -ind.fitness.values[0] * self.weights[0])
        return [tuple(ind) for ind in ranked[:size]]
