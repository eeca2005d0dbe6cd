"""One discovery run: data -> search -> honesty statistics -> ``discovered_structures.json``.

``discover(config, out_dir, map_fn)`` is the library entry point behind ``osd discover`` and
``osd demo``; the cluster layer passes its own ``map_fn`` and nothing else changes.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from backtest.calendar import trading_days
from backtest.dna import StructureDNA
from backtest.errors import UserError
from backtest.store import Dataset, atomic_write_json
from discovery import baselines, honesty, report
from discovery import walkforward as wf
from discovery.config import RunConfig
from discovery.evaluate import FOLD_RETURNS, LOCKBOX, EvalContext, LockboxRun, bind, cost_items, entry_fingerprint
from discovery.search import MapFn, Search, load_checkpoint
from discovery.space import SearchSpace
from discovery.tracking import NullSink, ResultsSink, StructureRecord

RESULT_FILE = "discovered_structures.json"
SUMMARY_FILE = "summary.txt"
CHECKPOINT_FILE = "checkpoint.pkl"


def check_before_compute(config: RunConfig) -> None:
    """Fail fast on data too short for the folds, before synthesizing or loading chains."""
    if config.data.synth:
        s = config.data.synth
        config.check_data_length(len(trading_days(s.start, s.end)), f"data.synth {s.start}..{s.end}")
        if s.plant and not config.resolve_path(s.plant).exists():
            raise UserError(f"{config.source}: data.synth.plant file {config.resolve_path(s.plant)} does not exist")
    else:
        path = config.resolve_path(config.data.path)
        if not path.exists():
            raise UserError(f"{config.source}: data.path {path} does not exist")
        bars = Dataset(path).read_underlying(config.underlying)
        config.check_data_length(bars.num_rows, f"{path} ({config.underlying})")


def dataset_path(config: RunConfig, progress: bool = False) -> Path:
    """The configured dataset; a synthetic one is generated once into data.cache_dir and reused."""
    if config.data.path:
        return config.resolve_path(config.data.path)
    from backtest.synth import synthesize
    from backtest.synth.plants import load_plants

    s = config.data.synth
    plants = load_plants(config.resolve_path(s.plant)) if s.plant else ()
    spec = {**s.model_dump(mode="json"), "plants": [p.model_dump(mode="json") for p in plants]}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    path = Path(config.data.cache_dir) / f"synth-{digest}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        synthesize(path, s.symbols, s.start, s.end, s.seed, s.mode, plants, progress=progress)
    return path


def iv_index_name(dataset: Dataset, underlying: str) -> str | None:
    """The VIX-like index the synthetic market writes (VIX for SPY, VIX_<SYM> otherwise), if present."""
    name = "VIX" if underlying == "SPY" else f"VIX_{underlying}"
    return name if name in dataset.indices else None


def make_context(config: RunConfig, path: Path) -> EvalContext:
    dataset = Dataset(path)
    n_days = dataset.read_underlying(config.underlying).num_rows
    config.check_data_length(n_days, str(path))
    wfs = config.walk_forward
    layout = wf.make_layout(n_days, wfs.folds, config.embargo_days, wfs.lockbox_days, wfs.min_fold_days)
    return EvalContext(
        dataset=str(path), underlying=config.underlying, regimes=tuple(config.space.regimes),
        iv_index=iv_index_name(dataset, config.underlying),
        costs=cost_items(config.costs),
        layout=layout, confidence=config.fitness.confidence, min_trades=config.fitness.min_trades,
        min_trades_penalty=config.fitness.min_trades_penalty,
    )


def discover(config: RunConfig, out_dir: Path, map_fn: MapFn = map, resume: bool = False,
             on_generation: Callable[[dict], None] | None = None, progress: bool = False,
             sink: ResultsSink | None = None,
             on_lockbox: Callable[[dict[int, LockboxRun]], None] | None = None) -> dict:
    """Run the search and write ``discovered_structures.json`` and ``summary.txt`` into ``out_dir``;
    stream the run into ``sink`` (MLflow, DESIGN §7) when one is given. ``on_lockbox`` receives
    the reported structures' lockbox backtests by rank (their trade logs, with no second run)."""
    check_before_compute(config)
    sink = sink or NullSink()
    sink.start(config.model_dump(mode="json"))

    def log_generation(record: dict) -> None:
        sink.log_generation(record["generation"], {
            "best_fitness": record["best"], "mean_fitness": record["population_mean"],
            "evaluations": record["evaluations"], "evals_per_s": record["evals_per_s"],
            "diversity": record["mean_distance"], "distinct_share": record["distinct_share"]})
        if on_generation is not None:
            on_generation(record)

    try:
        result, search, lockbox_runs = _discover(
            config, out_dir, map_fn, resume, log_generation, progress,
            on_report=None if isinstance(sink, NullSink) else
            lambda scored, runs: sink.log_structures(structure_records(scored, runs)))
    except BaseException as exc:
        sink.fail(f"{type(exc).__name__}: {exc}")
        raise
    if on_lockbox is not None:
        on_lockbox(lockbox_runs)
    # the structures went to the sink with the report (on_report); NullSink records nothing: spare it the table
    sink.finish(result, pd.DataFrame() if isinstance(sink, NullSink) else evaluations_table(search))
    return result


def evaluations_table(search: Search) -> pd.DataFrame:
    """Every distinct genome evaluated, one row each with its fold metrics; list- or tuple-valued
    fields (the genome, per-fold figures) as JSON text so the table stays flat for Parquet."""
    rows = [{k: json.dumps(v, default=str) if isinstance(v, (list, tuple, dict)) else v for k, v in rec.items()}
            for rec in search.state.cache.values()]
    return pd.DataFrame(rows)


def dna_of(entry: dict) -> StructureDNA:
    """The genome of a reported structure (an entry of ``discovered_structures``)."""
    return StructureDNA.from_dict({k: entry[k] for k in StructureDNA.__dataclass_fields__ if k in entry})


def structure_records(result: dict, lockbox_runs: dict[int, LockboxRun]) -> list[StructureRecord]:
    """The reported structures for tracking, from the lockbox backtests the report scored them
    with (rank -> :class:`~discovery.evaluate.LockboxRun`, what ``osd backtest`` replays): their
    equity curves, trade logs, payoff legs and lockbox metrics, with no second run."""
    records = []
    for entry in result["discovered_structures"]:
        box = lockbox_runs[entry["rank"]]
        records.append(StructureRecord.from_lockbox(
            entry["rank"], box.result, box.spot, lockbox=box.metrics, evaluation=box.replay,
            # the genome has no fitted parameters: the walk-forward test folds are its out-of-sample
            # evidence (though selection used them); the lockbox, logged separately, is the only unseen span
            in_sample={},
            out_of_sample={**{k: v for k, v in entry["walk_forward"].items() if isinstance(v, (int, float))},
                           "sharpe": entry["walk_forward"]["sharpe_annual"]},
            honesty={"dsr": entry["deflated_sharpe"], **({"pbo": result["pbo"]["pbo"]} if result["pbo"] else {})},
            verdict="discovered" if entry["passed"] else "rejected: " + "; ".join(entry["reasons"])))
    return records


def _discover(config: RunConfig, out_dir: Path, map_fn: MapFn, resume: bool,
              on_generation: Callable[[dict], None], progress: bool,
              on_report: Callable[[dict, dict[int, LockboxRun]], None] | None):
    started = time.perf_counter()
    out_dir = Path(out_dir)
    checkpoint = out_dir / CHECKPOINT_FILE
    state = load_checkpoint(checkpoint, config.digest()) if resume else None
    path = dataset_path(config, progress)
    context = make_context(config, path)
    evaluate_batch, evaluate_detail = bind(context)
    space = SearchSpace.from_spec(config.space)
    search = Search(space, evaluate_batch, config.search, config.digest(), map_fn=map_fn,
                    checkpoint_path=checkpoint, on_generation=on_generation)
    search.run(resume=state)
    refined = search.refine_regimes(config.search.refine_regimes,
                                    lambda genome: entry_fingerprint(context, space.to_dna(genome)))

    reported = search.hall_of_fame(config.honesty.top_n)
    pbo_set = search.best_per_structure(config.honesty.pbo_candidates)
    if len(pbo_set) < 2:  # a single structure type: its leading genomes are the alternatives
        pbo_set = search.hall_of_fame(config.honesty.pbo_candidates)
    # one map: the PBO candidates' fold returns and the reported structures' lockbox backtests
    # (the report's lockbox metrics and, with no second run, tracking's curves and trade logs)
    items = [(FOLD_RETURNS, space.to_dict(g)) for g in pbo_set] + [(LOCKBOX, space.to_dict(g)) for g in reported]
    batch = config.search.batch_size
    done = [out for chunk in map_fn(evaluate_detail, [items[i:i + batch] for i in range(0, len(items), batch)])
            for out in chunk]
    fold_returns, lockbox = dict(zip(pbo_set, done)), dict(zip(reported, done[len(pbo_set):]))
    result = assess(config, search, reported, pbo_set, fold_returns, lockbox, context, path)
    result["regime_refinement_trials"] = refined
    lockbox_by_rank = {rank: lockbox[genome] for rank, genome in enumerate(reported, start=1)}
    if on_report is not None:  # tracking draws and sends the structures while the baselines run
        on_report(result, lockbox_by_rank)
    if config.report.baselines:
        baselines.add_to_report(result, context, path, map_fn)
    result["elapsed_s"] = round(time.perf_counter() - started, 2)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(result, out_dir / RESULT_FILE)
    (out_dir / SUMMARY_FILE).write_text(report.summary(result))
    return result, search, lockbox_by_rank


def assess(config: RunConfig, search: Search, reported: list[tuple], pbo_set: list[tuple],
           fold_returns: dict[tuple, list], lockbox: dict[tuple, LockboxRun], context: EvalContext,
           path: Path) -> dict:
    """Honesty statistics for the leaders and the pass/fail verdict of each reported structure."""
    space, h = search.space, config.honesty
    records = list(search.state.cache.values())
    trial_sharpes = np.array([r["sharpe"] for r in records])
    n_trials = len(records)
    variance = float(trial_sharpes.var(ddof=1)) if n_trials > 1 else 0.0
    sr0 = honesty.expected_max_sharpe(n_trials, variance)

    fold_matrix = np.array([fold_returns[g] for g in pbo_set]).T
    pbo = None
    if fold_matrix.shape[1] >= 2 and fold_matrix.shape[0] >= 2 * h.pbo_blocks:
        res = honesty.probability_of_backtest_overfitting(fold_matrix, h.pbo_blocks)
        pbo = {"pbo": res.pbo, "n_splits": res.n_splits, "n_candidates": fold_matrix.shape[1],
               "candidates": [g[0] for g in pbo_set],
               "degradation_slope": res.degradation_slope, "prob_oos_loss": res.prob_oos_loss}

    structures = []
    for rank, genome in enumerate(reported, start=1):
        rec = search.state.cache[space.key(genome)]
        dsr = honesty.deflated_sharpe_ratio(rec["sharpe"], rec["n_days"], n_trials, variance,
                                            rec["skew"], rec["kurtosis"])
        box = lockbox[genome].metrics
        decay = honesty.sharpe_decay(rec["sharpe_annual"], box["sharpe_annual"])
        reasons = report.rejection_reasons(rec, box, dsr, pbo, config)
        entry = {
            "rank": rank,
            **space.to_dna(genome).to_dict(),
            "entry_regime_names": report.regime_names(space.to_dna(genome).entry_regime, config.space.regimes),
            # seed 000's result keys (walk-forward folds, i.e. the selection sample)
            "backtest_sharpe": round(rec["sharpe_annual"], 4),
            "backtest_return_pct": round(100 * rec["total_return"], 3),
            "win_rate_pct": round(100 * rec["win_rate"], 2),
            "n_trades": rec["n_trades"],
            "walk_forward": {k: rec[k] for k in ("fitness", "sharpe_lcb", "sharpe", "sharpe_annual", "max_drawdown",
                                                 "n_days", "fold_sharpe", "fold_trades", "straddling_trades",
                                                 "skew", "kurtosis")},
            "lockbox": box,
            "deflated_sharpe": dsr,
            "decay": {"walk_forward_sharpe_annual": decay.in_sample_sharpe,
                      "lockbox_sharpe_annual": decay.out_of_sample_sharpe,
                      "difference": decay.difference,
                      "retained": None if np.isnan(decay.retained) else decay.retained},
            "passed": not reasons,
            "reasons": reasons,
        }
        if reasons:
            entry["needed"] = report.what_would_pass(rec, n_trials, variance, h.dsr_min)
        structures.append(entry)

    meta = Dataset(path).meta
    passed = [s for s in structures if s["passed"]]
    return {
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config_name": config.name,
        "symbol": config.underlying,
        "seed": config.search.seed,
        "n_generations": config.search.generations,
        "population_size": config.search.population,
        "data": {"path": str(path), "n_days": context.layout.n_days,
                 "synthetic": config.data.synth.model_dump(mode="json") if config.data.synth else None,
                 "plants": report.plants_of(meta)},
        "walk_forward_layout": context.layout.to_dict(),
        "fill_model": context.make_costs().fill,
        "n_trials": n_trials,
        "trials_sharpe_variance": variance,
        "expected_max_sharpe_annual": honesty.annualise(sr0),
        "pbo": pbo,
        "thresholds": h.model_dump(mode="json"),
        "n_passed": len(passed),
        "verdict": (f"{len(passed)} structure(s) passed every threshold" if passed else
                    "nothing passed: no structure's edge survives deflation for the number of trials, "
                    "the PBO check and the lockbox"),
        "generations": [{k: v for k, v in r.items() if k not in ("elapsed_s", "evals_per_s")}
                        for r in search.state.logbook],
        "discovered_structures": structures,
    }
