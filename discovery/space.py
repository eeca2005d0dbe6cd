"""The search space: which genes the search varies, their bounds, and genome <-> StructureDNA.

A genome is a plain tuple, one value per searched gene in ``SearchSpace.names`` order
(structure type first, then numeric genes, then the entry-regime set as a sorted tuple). Fixed
genes are not in the tuple; they are added when the genome becomes a ``StructureDNA``. Plain
tuples pickle cheaply and never drag DEAP ``creator`` classes into worker processes.

The canonical genome is what the backtest would actually run: clamped into the space's bounds,
repaired by ``backtest.dna.repair`` and with genes irrelevant to its structure type reset by
``backtest.dna.canonical``. Two genomes with the same canonical form behave identically, so the
search evaluates each canonical genome once.
"""
from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from backtest import dna as dna_mod
from backtest.dna import StructureDNA

STRUCTURE = "structure_type"
ORDERED_PAIRS = (("front_dte_min", "front_dte_max"), ("back_dte_min", "back_dte_max"),
                 ("min_iv_percentile", "max_iv_percentile"))
REGIMES = "entry_regime"


@dataclass(frozen=True)
class NumericGene:
    name: str
    low: float
    high: float
    integer: bool

    @property
    def span(self) -> float:
        return self.high - self.low

    def clamp(self, value: float) -> float | int:
        value = min(max(value, self.low), self.high)
        return int(round(value)) if self.integer else float(value)

    def sample(self, rng: random.Random) -> float | int:
        if self.integer:
            return rng.randint(int(math.ceil(self.low)), int(math.floor(self.high)))
        return rng.uniform(self.low, self.high)


class SearchSpace:
    """Genes, bounds and fixed values of one run (built from ``config.SpaceSpec``)."""

    def __init__(self, structure_types: list[str], bounds: dict[str, tuple[float, float]],
                 fixed: dict[str, Any], regimes: list[int], evolve_regimes: bool = True,
                 mutation_sigma: float = 0.1):
        self.structure_types = tuple(structure_types)
        self.fixed = dict(fixed)
        self.regimes = tuple(sorted(regimes))
        self.mutation_sigma = mutation_sigma
        self._keys: dict[tuple, str] = {}  # genome -> key: selection asks for the same keys many times
        self._canonical: dict[tuple, tuple] = {}  # genome -> its canonical form
        self.numeric = tuple(
            NumericGene(name, float(low), float(high), dna_mod.GENE_BOUNDS[name][2] is int)
            for name, (low, high) in bounds.items() if name not in self.fixed
        )
        self.evolve_regimes = evolve_regimes and REGIMES not in self.fixed and len(self.regimes) > 1
        self.names = (STRUCTURE, *(g.name for g in self.numeric)) + ((REGIMES,) if self.evolve_regimes else ())
        self.index = {name: i for i, name in enumerate(self.names)}

    @classmethod
    def from_spec(cls, spec) -> "SearchSpace":
        """From ``config.SpaceSpec``: regime labels become their positions (the DNA's entry_regime codes)."""
        fixed = dict(spec.fixed)
        if fixed.get(REGIMES) is not None:
            fixed[REGIMES] = sorted(spec.regimes.index(r) for r in fixed[REGIMES])
        return cls(spec.structure_types, spec.genes, fixed, list(range(len(spec.regimes))),
                   spec.evolve_regimes, spec.mutation_sigma)

    # ------------------------------------------------------------------ genome <-> phenotype
    def random_genome(self, rng: random.Random) -> tuple:
        values: list[Any] = [rng.choice(self.structure_types)]
        values += [g.sample(rng) for g in self.numeric]
        if self.evolve_regimes:
            values.append(self.random_regimes(rng))
        return self.canonical(tuple(values))

    def random_regimes(self, rng: random.Random) -> tuple[int, ...]:
        """A non-empty subset; all regimes (no gate) as likely as any single proper subset size."""
        k = rng.randint(1, len(self.regimes))
        return tuple(sorted(rng.sample(self.regimes, k)))

    def to_dict(self, genome: tuple) -> dict[str, Any]:
        """Every gene of the phenotype as plain JSON values (fixed genes included)."""
        out = dict(zip(self.names, genome))
        out.update(self.fixed)
        if REGIMES in out and out[REGIMES] is not None:
            regimes = tuple(sorted(out[REGIMES]))
            out[REGIMES] = None if regimes == self.regimes else list(regimes)
        return out

    def to_dna(self, genome: tuple) -> StructureDNA:
        return dna_mod.StructureDNA.from_dict(self.to_dict(genome))

    def canonical(self, genome: tuple) -> tuple:
        """Clamp into this space's bounds, repair (backtest.dna) and reset irrelevant genes."""
        genome = tuple(genome)
        try:  # copied parents and repeated crossovers ask again for a genome already seen
            return self._canonical[genome]
        except KeyError:
            out = self._canonical[genome] = self._make_canonical(genome)
            return out

    def _make_canonical(self, genome: tuple) -> tuple:
        values = dict(zip(self.names, genome))
        for g in self.numeric:
            values[g.name] = g.clamp(values[g.name])
        if values[STRUCTURE] not in self.structure_types:
            values[STRUCTURE] = self.structure_types[0]
        if self.evolve_regimes:
            values[REGIMES] = tuple(sorted(set(values[REGIMES]) & set(self.regimes))) or self.regimes
        for low, high in ORDERED_PAIRS:  # before the back window is placed against the front one
            if low in values and high in values and values[low] > values[high]:
                values[low], values[high] = values[high], values[low]
        self._back_after_front(values)
        phenotype = dna_mod.StructureDNA(**{**values, **self.fixed})
        repaired = dna_mod.canonical(dna_mod.repair(phenotype))
        out = [repaired.structure_type.value]
        out += [getattr(repaired, g.name) for g in self.numeric]
        if self.evolve_regimes:
            out.append(tuple(repaired.entry_regime) if repaired.entry_regime else self.regimes)
        return tuple(out)

    def _back_after_front(self, values: dict[str, Any]) -> None:
        """Put a calendar's back window after its front window *inside this space's bounds*
        (backtest.dna.repair would push it past them, and clamping back would undo the repair)."""
        if values[STRUCTURE] not in dna_mod.TWO_EXPIRY_TYPES or "back_dte_min" not in values:
            return
        genes = {g.name: g for g in self.numeric}
        front_min, front_max = (values.get(n, self.fixed.get(n)) for n in ("front_dte_min", "front_dte_max"))
        back_min, back_max = values["back_dte_min"], values.get("back_dte_max", self.fixed.get("back_dte_max"))
        if front_max is None or back_min > front_max:
            return
        ceiling = genes["back_dte_min"].high
        back_min = int(min(front_max + 1, ceiling))
        if back_min <= front_max and "front_dte_max" in genes:  # no room above: lower the front window
            front_max = genes["front_dte_max"].clamp(back_min - 1)
            values["front_dte_max"] = front_max
            if "front_dte_min" in genes:
                values["front_dte_min"] = min(front_min, front_max)
        values["back_dte_min"] = back_min
        if "back_dte_max" in genes:
            values["back_dte_max"] = genes["back_dte_max"].clamp(max(back_max, back_min))

    def key(self, genome: tuple) -> str:
        """Stable text key of a canonical genome (cache, checkpoints, reports)."""
        genome = tuple(genome)
        try:
            return self._keys[genome]
        except KeyError:
            key = self._keys[genome] = self.to_dna(genome).to_json()
            return key

    # ------------------------------------------------------------------ diversity
    def diversity(self, population: list[tuple]) -> dict[str, float]:
        """Share of distinct genomes, and the mean pairwise genome distance: the mean per-gene
        distance, numeric genes by share of their range, the structure type by mismatch, the
        regime set by Jaccard distance. Summed per gene over all pairs in O(n log n) (sorted
        values; counts of types and regime sets), since the driver computes it every generation
        and a population of 10,000 has 50 million pairs."""
        n = len(population)
        distinct = len(set(map(tuple, population)))
        if n < 2:
            return {"distinct_share": distinct / n if n else 0.0, "mean_distance": 0.0}
        pairs = n * (n - 1) / 2
        rank_weight = 2 * np.arange(n) - n + 1  # sum over pairs of |x_i - x_j| = sum_k x_(k) (2k - n + 1)
        types = Counter(g[0] for g in population)
        total = pairs - sum(c * (c - 1) / 2 for c in types.values())
        for i, g in enumerate(self.numeric, start=1):
            if g.span > 0:
                total += float(np.sort(np.array([float(x[i]) for x in population])) @ rank_weight) / g.span
        parts = 1 + len(self.numeric)
        if self.evolve_regimes:
            sets = Counter(frozenset(g[-1]) for g in population)
            total += sum(sets[a] * sets[b] * (1 - len(a & b) / len(a | b))
                         for a, b in itertools.combinations(sets, 2))
            parts += 1
        return {"distinct_share": distinct / n, "mean_distance": total / pairs / parts}
