"""The search core on a known objective (no market data): operators, cache, determinism, resume."""
import json
import multiprocessing
import random
from concurrent.futures import ProcessPoolExecutor

import pytest

from backtest.dna import StructureDNA
from discovery import operators
from discovery.config import SearchSpec, SpaceSpec
from backtest.errors import UserError
from discovery.search import Search, evaluation_log, load_checkpoint
from discovery.space import SearchSpace
from tests.conftest import Interrupted, interrupt_after

TARGET_TYPE = "put_credit_spread"


def known_objective(batch: list[dict]) -> list[dict]:
    """A peaked function of the genes with its maximum at a put credit spread, 30-45 DTE, 0.2 delta."""
    out = []
    for g in batch:
        score = -abs(g["front_dte_min"] - 30) / 30 - abs(g["front_dte_max"] - 45) / 45
        score -= abs(g["short_strike_delta"] - 0.2) * 5
        score += 1.0 if g["structure_type"] == TARGET_TYPE else 0.0
        out.append({"fitness": score, "sharpe": score, "max_drawdown": abs(g["short_strike_delta"] - 0.2),
                    "n_trades": float(g["front_dte_min"])})
    return out


def make_space(**overrides) -> SearchSpace:
    return SearchSpace.from_spec(SpaceSpec(**overrides))


def make_search(tmp_path=None, map_fn=map, on_generation=None, **spec) -> Search:
    spec = SearchSpec(**{"population": 16, "generations": 6, "seed": 3, "batch_size": 5, **spec})
    return Search(make_space(), known_objective, spec, "digest", map_fn=map_fn,
                  checkpoint_path=None if tmp_path is None else tmp_path / "checkpoint.pkl",
                  on_generation=on_generation)


def test_random_genomes_are_canonical_valid_dnas():
    space = make_space()
    rng = random.Random(0)
    for _ in range(200):
        g = space.random_genome(rng)
        assert space.canonical(g) == g
        dna = space.to_dna(g)
        assert isinstance(dna, StructureDNA)
        assert dna.front_dte_min <= dna.front_dte_max


def test_canonical_merges_genomes_that_behave_identically():
    space = make_space()
    g = space.random_genome(random.Random(1))
    straddle = list(g)
    straddle[0] = "long_straddle"
    a, b = list(straddle), list(straddle)
    i = space.index["spread_width_strikes"]
    a[i], b[i] = 2, 9  # a straddle has no width
    assert space.key(space.canonical(tuple(a))) == space.key(space.canonical(tuple(b)))


def test_operators_stay_in_bounds_and_repair_structure_switches():
    space = make_space(structure_types=["calendar_put", "long_put"])
    rng = random.Random(2)
    pop = [space.random_genome(rng) for _ in range(30)]
    for _ in range(300):
        a, b = rng.choice(pop), rng.choice(pop)
        c1, c2 = operators.seed_crossover(space, a, b, rng)
        for child in (c1, c2, operators.mutate(space, a, rng), operators.switch_structure(space, a, rng)):
            child = space.canonical(child)
            dna = space.to_dna(child)  # validates
            if dna.structure_type.value == "calendar_put":
                assert dna.back_dte_min > dna.front_dte_max
            for gene in space.numeric:
                if getattr(dna, gene.name) is not None and dna.structure_type.value == "long_put":
                    assert gene.name in ("back_dte_min", "back_dte_max") or gene.low <= getattr(dna, gene.name) <= gene.high


def test_crossover_follows_seed_000():
    space = make_space()
    rng = random.Random(4)
    a, b = space.random_genome(rng), space.random_genome(rng)
    c1, c2 = operators.seed_crossover(space, a, b, rng)
    assert c1[0] in (a[0], b[0]) and c2[0] in (a[0], b[0])
    i = space.index["long_strike_delta"]
    lo, hi = sorted((a[i], b[i]))
    assert lo - 1e-12 <= c1[i] <= hi + 1e-12
    assert c1[i] + c2[i] == pytest.approx(a[i] + b[i])  # weights w and 1 - w
    assert set(c1[-1]) == set(a[-1]) | set(b[-1])


def test_toolbox_registers_operators_by_name():
    toolbox = operators.make_toolbox(make_space(), random.Random(0))
    for name in operators.OPERATORS:
        assert hasattr(toolbox, name)


def test_search_finds_the_known_optimum_and_evaluates_each_genome_once():
    calls = []

    def counting(batch):
        calls.extend(json.dumps(g, sort_keys=True) for g in batch)
        return known_objective(batch)

    search = make_search(generations=12, population=24)
    search.evaluate_batch = counting
    state = search.run()
    assert len(calls) == len(set(calls)) == len(state.cache)
    best = search.hall_of_fame(1)[0]
    assert best[0] == TARGET_TYPE
    assert state.logbook[-1]["best"] > state.logbook[0]["best"]
    assert [r["generation"] for r in state.logbook] == list(range(13))


def test_identical_with_serial_and_process_pool_maps():
    serial = make_search().run()
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        pooled = make_search(map_fn=pool.map).run()
    assert list(serial.cache) == list(pooled.cache)
    assert serial.population == pooled.population
    assert serial.cache == pooled.cache


def test_resume_after_interruption_gives_the_identical_result(tmp_path):
    full = make_search().run()

    with pytest.raises(Interrupted):
        make_search(tmp_path, on_generation=interrupt_after(3)).run()
    state = load_checkpoint(tmp_path / "checkpoint.pkl", "digest")
    assert state.generation == 3
    resumed = make_search(tmp_path).run(resume=state)
    assert resumed.population == full.population
    assert resumed.cache == full.cache
    strip = [{k: v for k, v in r.items() if k not in ("elapsed_s", "evals_per_s")} for r in resumed.logbook]
    assert strip == [{k: v for k, v in r.items() if k not in ("elapsed_s", "evals_per_s")} for r in full.logbook]


def test_checkpoints_append_only_new_evaluations_and_survive_a_torn_append(tmp_path):
    sizes = []
    log = evaluation_log(tmp_path / "checkpoint.pkl")
    make_search(tmp_path, on_generation=lambda record: sizes.append(log.read_bytes())).run()
    assert all(later.startswith(earlier) for earlier, later in zip(sizes, sizes[1:])), "the log is only appended to"
    full = load_checkpoint(tmp_path / "checkpoint.pkl", "digest")
    # a crash while appending the next generation leaves a torn frame after the checkpoint's part
    with open(log, "ab") as fh:
        fh.write(b"torn frame")
    state = load_checkpoint(tmp_path / "checkpoint.pkl", "digest")
    assert state.cache == full.cache and list(state.cache) == list(full.cache)
    log.write_bytes(sizes[2])  # the log lost the frames the state file counts on
    with pytest.raises(UserError, match="evaluation log"):
        load_checkpoint(tmp_path / "checkpoint.pkl", "digest")


def test_checkpoint_from_another_config_is_refused(tmp_path):
    make_search(tmp_path, generations=1).run()
    with pytest.raises(UserError, match="different config"):
        load_checkpoint(tmp_path / "checkpoint.pkl", "other")


def test_nsga2_keeps_a_pareto_front():
    search = make_search(algorithm="nsga2", objectives=["fitness", "max_drawdown", "n_trades"])
    search.run()
    front = search.hall_of_fame(50)
    assert front
    values = [search.weighted(g) for g in front]
    for v in values:  # nobody on the front is dominated by another member
        assert not any(all(o >= s for o, s in zip(other, v)) and other != v for other in values)


def test_diversity_is_defended_when_it_collapses():
    search = make_search(diversity_floor=0.99, reinject_fraction=0.5)
    state = search.run()
    assert all(r["reinjected"] >= 8 for r in state.logbook)
    assert all(0 < r["mean_distance"] <= 1 for r in state.logbook)


def test_best_per_structure_gives_one_distinct_alternative_per_type():
    search = make_search()
    search.run()
    best = search.best_per_structure(50)
    assert len({g[0] for g in best}) == len(best) > 1
    assert best[0] == search.hall_of_fame(1)[0]
    values = [search.weighted(g)[0] for g in best]
    assert values == sorted(values, reverse=True)


def test_mean_distance_is_the_mean_per_gene_distance_over_pairs():
    space = make_space()
    rng = random.Random(1)
    a, b = space.random_genome(rng), space.random_genome(rng)
    # by hand: structure mismatch, numeric genes by share of their range, regime sets by Jaccard
    parts = [float(a[0] != b[0])] + [abs(a[i] - b[i]) / g.span for i, g in enumerate(space.numeric, start=1)]
    if space.evolve_regimes:
        parts.append(1 - len(set(a[-1]) & set(b[-1])) / len(set(a[-1]) | set(b[-1])))
    expected = sum(parts) / len(parts)
    assert space.diversity([a, b])["mean_distance"] == pytest.approx(expected)
    # three genomes: the mean over the three pairs, and a genome is at distance 0 from itself
    assert space.diversity([a, b, a])["mean_distance"] == pytest.approx(2 * expected / 3)


def test_regime_refinement_gates_each_leader_to_the_subsets_of_its_regimes_but_skips_those_trading_alike():
    def narrowed(search, leaders):
        return {search.space.canonical(g[:-1] + (s,)) for g in leaders for s in ((0,), (1,)) if set(s) < set(g[-1])}

    search = make_search(generations=2)
    search.run()
    leaders = search.hall_of_fame(3)
    variants = narrowed(search, leaders)
    new = {search.space.key(v) for v in variants} - set(search.state.cache)
    before = set(search.state.cache)
    assert any(g[-1] == (0, 1) for g in leaders)  # else nothing to narrow: the test would not test
    assert search.refine_regimes(3) == len(new) > 0
    assert set(search.state.cache) - before == new  # never a widened or swapped regime set

    # entry fingerprints: variants that would trade exactly like their leader, or never, are not trials worth running
    alike = make_search(generations=2)
    alike.run()
    assert alike.refine_regimes(3, lambda genome: "the same days") == 0
    assert set(alike.state.cache) == before
    never_in_regime_1 = make_search(generations=2)
    never_in_regime_1.run()
    never_in_regime_1.refine_regimes(3, lambda genome: None if genome[-1] == (1,) else genome[-1])
    assert set(never_in_regime_1.state.cache) - before == {search.space.key(v) for v in variants if v[-1] != (1,)} - before
