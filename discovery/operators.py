"""Typed variation operators over plain genome tuples, registered by name in a DEAP toolbox.

Each operator takes ``random.Random`` explicitly where it draws, returns new tuples (never mutates
its input) and leaves repair to ``SearchSpace.canonical``, which every child passes through.
"""
from __future__ import annotations

import random
from typing import Any, Callable

from deap import base

from discovery.space import SearchSpace


def gaussian_real(space: SearchSpace, genome: tuple, rng: random.Random, indpb: float) -> tuple:
    """Gaussian step (sigma = mutation_sigma x range) on each real gene with probability indpb."""
    out = list(genome)
    for i, g in enumerate(space.numeric, start=1):
        if not g.integer and rng.random() < indpb:
            out[i] = g.clamp(out[i] + rng.gauss(0.0, space.mutation_sigma * g.span))
    return tuple(out)


def integer_step(space: SearchSpace, genome: tuple, rng: random.Random, indpb: float) -> tuple:
    """Bounded integer step on each integer gene with probability indpb: +/- up to
    mutation_sigma x range (at least 1)."""
    out = list(genome)
    for i, g in enumerate(space.numeric, start=1):
        if g.integer and rng.random() < indpb:
            reach = max(1, int(round(space.mutation_sigma * g.span)))
            step = rng.choice([s for s in range(-reach, reach + 1) if s])
            out[i] = g.clamp(out[i] + step)
    return tuple(out)


def switch_structure(space: SearchSpace, genome: tuple, rng: random.Random) -> tuple:
    """Resample the structure type (categorical gene); canonical() then repairs the parameters
    (e.g. pushes a calendar's back window after its front window)."""
    others = [t for t in space.structure_types if t != genome[0]]
    if not others:
        return genome
    return (rng.choice(others),) + tuple(genome[1:])


def toggle_regime(space: SearchSpace, genome: tuple, rng: random.Random) -> tuple:
    """Add or remove one regime from the entry set (never leaving it empty)."""
    if not space.evolve_regimes:
        return genome
    current = set(genome[-1])
    regime = rng.choice(space.regimes)
    if regime in current and len(current) > 1:
        current.remove(regime)
    else:
        current.add(regime)
    return tuple(genome[:-1]) + (tuple(sorted(current)),)


def seed_crossover(space: SearchSpace, a: tuple, b: tuple, rng: random.Random) -> tuple[tuple, tuple]:
    """Seed 000 §Phase 4: structure type from a random parent, numeric genes averaged, regime sets
    combined. The average is weighted by w ~ U(0, 1) for one child and 1 - w for the other (w = 1/2
    is the plain average), so two children differ; one child takes the union of the parents'
    regime sets, the other their intersection (the union when that is empty)."""
    w = rng.random()
    children = []
    for weight in (w, 1 - w):
        child: list[Any] = [a[0] if rng.random() < 0.5 else b[0]]
        for i, g in enumerate(space.numeric, start=1):
            child.append(g.clamp(weight * a[i] + (1 - weight) * b[i]))
        children.append(child)
    if space.evolve_regimes:
        union = tuple(sorted(set(a[-1]) | set(b[-1])))
        inter = tuple(sorted(set(a[-1]) & set(b[-1]))) or union
        children[0].append(union)
        children[1].append(inter)
    return tuple(children[0]), tuple(children[1])


def mutate(space: SearchSpace, genome: tuple, rng: random.Random, type_switch_pb: float = 0.15,
           regime_pb: float = 0.2) -> tuple:
    """The default mutation: numeric steps on about two genes, sometimes a structure switch or a
    regime toggle. Always changes something (or returns an equal genome that the cache absorbs)."""
    indpb = min(1.0, 2.0 / max(1, len(space.numeric)))
    out = integer_step(space, gaussian_real(space, genome, rng, indpb), rng, indpb)
    if rng.random() < type_switch_pb:
        out = switch_structure(space, out, rng)
    if rng.random() < regime_pb:
        out = toggle_regime(space, out, rng)
    return out


OPERATORS: dict[str, Callable] = {
    "gaussian_real": gaussian_real,
    "integer_step": integer_step,
    "switch_structure": switch_structure,
    "toggle_regime": toggle_regime,
    "seed_crossover": seed_crossover,
    "mutate": mutate,
}


def make_toolbox(space: SearchSpace, rng: random.Random) -> base.Toolbox:
    """A DEAP toolbox with every operator registered by name, bound to ``space`` and ``rng``;
    ``mate`` and ``mutate`` are the defaults the loop uses."""
    toolbox = base.Toolbox()
    for name, fn in OPERATORS.items():
        if name in ("gaussian_real", "integer_step"):
            toolbox.register(name, fn, space, rng=rng, indpb=0.5)
        else:
            toolbox.register(name, fn, space, rng=rng)
    toolbox.register("mate", seed_crossover, space, rng=rng)
    toolbox.register("random_genome", space.random_genome, rng)
    toolbox.register("canonical", space.canonical)
    return toolbox

