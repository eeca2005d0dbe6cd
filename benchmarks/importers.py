"""Importer and implied-volatility throughput, per core, against baselines measured in the same run.

Every rate is rows (or options) per CPU second of this process (time.process_time: user +
system time of all its threads, and everything runs on one thread), i.e. per core: on a shared
machine, time spent waiting for a CPU does not count, which wall-clock rates would mix in.

* CSV -> Parquet: ``import_files`` (parse, canonical rows, IV/greeks fill, validation, sorted
  Parquet parts, atomic commit) on the real SPX 2019 sample (58 gzipped daily files, 809,782
  rows; quick: 5 files) in a fresh one-thread process, best of three (quick: one), against
  pandas.read_csv + to_parquet of the same files (which does only the first and last of those
  steps), with the rate of each stage on its own and of reading alone (gzip; gzip + Arrow CSV
  parse; ISA-L gzip + the numba reader of the long layout). With OSD_BASELINE_TREE set to a
  checkout of an earlier version (``git archive <ref> | tar -x -C DIR``), that tree's import
  runs alternately with this one's (a same-run ratio), and both trees' stores of the same files
  are compared (``same_store``: equal tables, statistics and dataset.json; codecs may differ).
* Implied volatility: the numba kernel (tabulated guess + one Householder step) on one thread
  over the SPX sample's mid prices (its moneyness and DTE mix) and over random inputs, against
  the previous kernel (Jäckel 2006 guess + Halley steps) on the same inputs in the same run, and
  against scipy.optimize.brentq per option on a sample.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._long_sample import spx_sample_files

RATE, DIV = 0.024, 0.019
BRENTQ_SAMPLE = 2000


def _single_core() -> None:
    import numba
    import pyarrow as pa

    numba.set_num_threads(1)
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)


def _import_once(files: list[Path], tmp: Path):
    """One import in this process: its summary (row accounting) and the store (IV inputs)."""
    from backtest.importers import FormatSpec
    from backtest.importers.pipeline import import_files
    from backtest.importers.rates import RateSchedule

    out = tmp / "ds"
    return import_files(files, out, FormatSpec("long"), RateSchedule.constant(RATE, DIV)), str(out)


_TIMED_IMPORT = """
import shutil, sys, tempfile, time
sys.path.insert(0, ".")
from pathlib import Path
import numba, pyarrow as pa
numba.set_num_threads(1); pa.set_cpu_count(1); pa.set_io_thread_count(1)
from backtest.importers import FormatSpec
from backtest.importers.pipeline import import_files
from backtest.importers.rates import RateSchedule
files, rates, tmp = [Path(f) for f in sys.argv[1:]], RateSchedule.constant({rate}, {div}), Path(tempfile.mkdtemp())
import_files(files[:1], tmp / "warm", FormatSpec("long"), rates)
for k in range({repeats}):
    t0 = time.process_time()
    summary = import_files(files, tmp / f"ds{{k}}", FormatSpec("long"), rates)
    print(summary.input_rows / (time.process_time() - t0))
shutil.rmtree(tmp)
"""


def _import_rates(files: list[Path], baseline: Path | None, rounds: int) -> dict[str, float]:
    """import_files rates of this tree (and of `baseline`, a checkout of an earlier version),
    each in a fresh one-thread process after a one-file warm-up (JIT caches), alternately
    `rounds` times: the best of each."""
    import subprocess
    import sys

    trees = _trees(baseline)
    best = dict.fromkeys(trees, 0.0)
    script = _TIMED_IMPORT.format(rate=RATE, div=DIV, repeats=1)
    for _ in range(rounds):
        for name, tree in trees.items():
            out = subprocess.run([sys.executable, "-c", script, *map(str, files)], cwd=tree, check=True,
                                 capture_output=True, text=True, env=_tree_env(tree))
            best[name] = max(best[name], float(out.stdout.split()[-1]))
    return best


def paired_import_rates(files: list[Path], baseline: Path, rounds: int, repeats: int = 3) -> dict:
    """This tree's and `baseline`'s import_files at the same time, each process pinned to one of
    two cores (swapped every round), `repeats` imports per process after the warm-up: the two
    see the same state of a shared machine, whose speed drifts by up to 2.3x between consecutive
    imports, so the ratio of each pair compares them more fairly than imports run one after the
    other. Returns the rates and the pairs' ratios (this / baseline)."""
    import math
    import statistics
    import subprocess
    import sys

    trees = _trees(baseline)
    script = _TIMED_IMPORT.format(rate=RATE, div=DIV, repeats=repeats)
    rates: dict[str, list[float]] = {name: [] for name in trees}
    for r in range(rounds):
        names = list(trees) if r % 2 == 0 else list(trees)[::-1]
        procs = {name: subprocess.Popen(
            [sys.executable, "-c", script, *map(str, files)], cwd=trees[name], env=_tree_env(trees[name]),
            stdout=subprocess.PIPE, text=True, preexec_fn=lambda core=core: os.sched_setaffinity(0, {core}))
            for core, name in enumerate(names)}
        for name, proc in procs.items():
            out, _ = proc.communicate()
            if proc.returncode:
                raise RuntimeError(f"the timed import of {trees[name]} failed")
            rates[name] += [float(v) for v in out.split()]
    ratios = [a / b for a, b in zip(rates["this"], rates["baseline"])]
    return {
        "rows_per_s": {name: {"best": round(max(v)), "median": round(statistics.median(v))} for name, v in rates.items()},
        "pairs": len(ratios),
        "pair_ratio": {"median": round(statistics.median(ratios), 3),
                       "geometric_mean": round(math.exp(sum(map(math.log, ratios)) / len(ratios)), 3),
                       "min": round(min(ratios), 3), "max": round(max(ratios), 3),
                       "above_1": sum(r > 1 for r in ratios)},
    }


def _trees(baseline: Path | None) -> dict[str, Path]:
    trees = {"this": Path(__file__).resolve().parents[1]}
    if baseline is not None:
        trees["baseline"] = baseline.resolve()
    return trees


def _tree_env(tree: Path) -> dict[str, str]:
    """The environment with `tree` first on the path (other entries kept, e.g. a library
    installed with --target, but not this tree's)."""
    this = Path(__file__).resolve().parents[1]
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != this]
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), *extra])}


_BUILD_STORE = """
import sys
sys.path.insert(0, ".")
from pathlib import Path
from backtest.importers import FormatSpec
from backtest.importers.pipeline import import_files
from backtest.importers.rates import RateSchedule
import_files([Path(f) for f in sys.argv[2:]], Path(sys.argv[1]), FormatSpec("long"), RateSchedule.constant({rate}, {div}))
"""


def _same_store_as_baseline(files: list[Path], baseline: Path, tmp: Path) -> bool:
    """Whether this tree's import of `files` stores the same content as the baseline tree's:
    the same files, equal tables, the same row-group statistics, the same dataset.json apart
    from its timestamps (the codec may differ)."""
    import json
    import subprocess
    import sys

    import pyarrow.parquet as pq

    stores = {}
    for name, tree in _trees(baseline).items():
        stores[name] = tmp / f"store-{name}"
        subprocess.run([sys.executable, "-c", _BUILD_STORE.format(rate=RATE, div=DIV), str(stores[name]),
                        *map(str, files)], cwd=tree, check=True, capture_output=True, env=_tree_env(tree))
    this, base = stores["this"], stores["baseline"]
    names = sorted(str(p.relative_to(this)) for p in this.rglob("*") if p.is_file())
    if names != sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()):
        return False
    for name in names:
        if name.endswith(".json"):
            a, b = (json.loads((s / name).read_text()) for s in (this, base))
            if {k: v for k, v in a.items() if k not in ("created", "updated")} != {
                    k: v for k, v in b.items() if k not in ("created", "updated")}:
                return False
            continue
        if not pq.read_table(this / name).equals(pq.read_table(base / name)):
            return False
        a, b = pq.read_metadata(this / name), pq.read_metadata(base / name)
        for g in range(a.num_row_groups):
            for c in range(a.num_columns):
                sa, sb = a.row_group(g).column(c).statistics, b.row_group(g).column(c).statistics
                if (sa is None) != (sb is None) or (sa is not None and sa.has_min_max and (
                        (sa.min, sa.max, sa.null_count) != (sb.min, sb.max, sb.null_count))):
                    return False
    return True


def _stage_rates(files: list[Path]) -> dict[str, int]:
    """Rows per second of each stage of the import, run one after the other on the same files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from backtest.importers.greeks import add_greeks
    from backtest.importers.long import LongFormat
    from backtest.importers.pipeline import PARQUET_OPTIONS, whole_days
    from backtest.importers.rates import RateSchedule
    from backtest.store import sort_chains
    from backtest.validate import validate_rows

    rates, fmt = RateSchedule.constant(RATE, DIV), LongFormat()
    spent = dict.fromkeys(["parse_and_canonical", "iv_and_greeks", "validation", "sort_and_parquet"], 0.0)
    rows = 0
    sink = tempfile.NamedTemporaryFile(suffix=".parquet")
    for f in files:
        t0 = time.process_time()
        days = [t for t, _ in whole_days(fmt.chunks(f), f.name)]
        t1 = time.process_time()
        days = [add_greeks(t, rates) for t in days]
        t2 = time.process_time()
        good = [validate_rows(t, source=f.name, store_order=True).good for t in days]
        t3 = time.process_time()
        pq.write_table(sort_chains(pa.concat_tables(good)), sink.name, **PARQUET_OPTIONS)
        t4 = time.process_time()
        for key, dt_ in zip(spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            spent[key] += dt_
        rows += sum(t.num_rows for t in days)
    return {key: round(rows / v) for key, v in spent.items()}


def _read_floor_rates(files: list[Path]) -> dict[str, int]:
    """Rows per second of reading alone: gzip decompression (zlib, as Arrow's stream does, and
    ISA-L, as the importer does); decompression + the streaming Arrow CSV parse with the
    importer's column types (the reader of generic layouts); decompression + the numba reader of
    the long layout (typed columns, roots, rights: what the import's first stage does before it
    builds the Arrow table)."""
    import pyarrow as pa

    from backtest.importers.common import FileState
    from backtest.importers.fixed import fixed_blocks, gzip_module
    from backtest.importers.long import LongFormat
    from backtest.importers.source import read_csv_batches

    fmt = LongFormat()
    rows = 0
    spent = dict.fromkeys(["zlib_decompress", "isal_decompress", "decompress_and_arrow_csv_parse",
                           "decompress_and_numba_parse"], 0.0)
    for f in files:
        t0 = time.process_time()
        with pa.input_stream(str(f), compression="gzip") as stream:
            stream.read()
        t1 = time.process_time()
        with gzip_module.open(f, "rb") as stream:
            stream.read()
        t2 = time.process_time()
        rows += sum(t.num_rows for t, _ in read_csv_batches(f, fmt.layout, "bench"))
        t3 = time.process_time()
        for _ in fixed_blocks(f, None, fmt.layout, fmt.fixed, "bench", FileState(f.name)):
            pass
        t4 = time.process_time()
        for key, dt_ in zip(spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            spent[key] += dt_
    return {key: round(rows / v) for key, v in spent.items()}


def _pandas_rate(files: list[Path], tmp: Path, rounds: int) -> float:
    """pandas.read_csv + DataFrame.to_parquet with the import's codec, best of `rounds`."""
    import pandas as pd

    from backtest.importers.pipeline import PARQUET_OPTIONS

    best = 0.0
    for _ in range(rounds):
        rows = 0
        t0 = time.process_time()
        for i, f in enumerate(files):
            df = pd.read_csv(f)
            df.to_parquet(tmp / f"pandas_{i}.parquet", engine="pyarrow", compression=PARQUET_OPTIONS["compression"])
            rows += len(df)
        best = max(best, rows / (time.process_time() - t0))
    return best


def _best_rate(fn, n: int, repeats: int = 3) -> float:
    best = np.inf
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return n / best


def _iv_inputs_from_store(path: str):
    from backtest import pricing
    from backtest.store import Dataset, chain_arrays

    a = chain_arrays(Dataset(path).read_chains("SPX"))
    t = (a.expiration - a.quote_date) / pricing.YEAR_DAYS
    forward, discount = pricing.forward_and_discount(a.underlying_price, t, RATE, DIV)
    return a.is_call, 0.5 * (a.bid + a.ask), forward, a.strike, t, discount


def _random_inputs(n: int, seed: int = 0):
    from backtest import pricing

    rng = np.random.default_rng(seed)
    f = rng.uniform(50, 150, n)
    k = f * np.exp(rng.normal(0, 0.3, n))
    t = rng.uniform(1 / 365, 3, n)
    df = np.exp(-0.03 * t)
    is_call = rng.random(n) < 0.5
    price = pricing.black76_price(is_call, f, k, t, df, rng.uniform(0.03, 1.5, n))
    return is_call, price, f, k, t, df


def _kernel_rates(inputs) -> dict:
    """Implied vols per second of the solver and of the previous (2006) solver on the same
    inputs, measured alternately so that both see the same load."""
    from backtest import pricing, pricing_nb

    guess = pricing.iv_guess_table()
    fast, previous = np.empty(len(inputs[1])), np.empty(len(inputs[1]))
    solvers = {"table_householder": lambda: pricing_nb.black_implied_vol_array(*inputs, guess, fast),
               "jaeckel_2006_halley": lambda: pricing_nb.black_implied_vol_2006_array(*inputs, previous)}
    for solve in solvers.values():
        solve()  # JIT/cache load
    best = dict.fromkeys(solvers, 0.0)
    for _ in range(3):
        for name, solve in solvers.items():
            best[name] = max(best[name], _best_rate(solve, len(fast), repeats=1))
    if not np.array_equal(np.isnan(fast), np.isnan(previous)):
        raise AssertionError("the two solvers disagree on which prices have an implied volatility")
    return {**{k: round(v) for k, v in best.items()}, "nan_share": round(float(np.isnan(fast).mean()), 4)}


def _price_rate(inputs) -> float:
    """Black-76 prices per second on the same inputs: the unit an IV costs is counted in."""
    from backtest import pricing_nb

    is_call, _, f, k, t, df = inputs
    sigma = np.full(len(f), 0.2)
    out = np.empty(len(f))
    pricing_nb.black_price_array(is_call, f, k, t, df, sigma, out)
    return _best_rate(lambda: pricing_nb.black_price_array(is_call, f, k, t, df, sigma, out), len(out))


def _brentq_rate(inputs) -> float:
    from scipy.optimize import brentq

    from backtest import pricing_nb

    is_call, price, f, k, t, df = (np.asarray(a)[:BRENTQ_SAMPLE * 3] for a in inputs)
    ok = ~np.isnan(np.array([pricing_nb.black_implied_vol_2006(c, p, ff, kk, tt, d)
                             for c, p, ff, kk, tt, d in zip(is_call, price, f, k, t, df)]))
    rows = [r for r in zip(is_call, price, f, k, t, df, ok) if r[-1]][:BRENTQ_SAMPLE]
    t0 = time.process_time()
    for c, p, ff, kk, tt, d, _ in rows:
        brentq(lambda s: pricing_nb.black_price.py_func(c, ff, kk, tt, d, s) - p, 1e-6, 20.0, xtol=1e-12)
    return len(rows) / (time.process_time() - t0)


def run(quick: bool) -> dict:
    _single_core()
    files = spx_sample_files()
    files = files[:5] if quick else files
    tmp = Path(tempfile.mkdtemp(prefix="bench-importers-"))
    rounds = 1 if quick else 3
    baseline = os.environ.get("OSD_BASELINE_TREE")
    try:
        summary, store = _import_once(files, tmp)
        imports = _import_rates(files, Path(baseline) if baseline else None, rounds)
        same_store = _same_store_as_baseline(files, Path(baseline), tmp) if baseline else None
        pandas = _pandas_rate(files, tmp, rounds)
        stages = _stage_rates(files)
        floors = _read_floor_rates(files)
        spx = _iv_inputs_from_store(store)
        spx_rates = _kernel_rates(spx)
        random_rates = _kernel_rates(_random_inputs(200_000 if quick else 2_000_000))
        brentq = _brentq_rate(spx)
        prices = _price_rate(spx)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ours = imports["this"]
    versus_tree = {"baseline_tree": baseline, "baseline_rows_per_s": round(imports["baseline"]),
                   "ratio": round(ours / imports["baseline"], 2), "same_store": same_store} if baseline else None
    return {
        "files": len(files),
        "rows": summary.input_rows,
        "imported": summary.imported,
        "quarantined": dict(sorted(summary.quarantined.items())),
        "import_rows_per_s_per_core": round(ours),
        "pandas_csv_to_parquet_rows_per_s": round(pandas),
        "import_vs_pandas": round(ours / pandas, 2),
        "import_stage_rows_per_s": stages,
        **({"import_vs_previous_tree": versus_tree} if versus_tree else {}),
        "read_floor_rows_per_s": floors,
        "iv_per_s_per_core_spx_mids": spx_rates,
        "iv_spx_vs_previous_solver": round(spx_rates["table_householder"] / spx_rates["jaeckel_2006_halley"], 2),
        "iv_per_s_per_core_random": random_rates,
        "iv_random_vs_previous_solver": round(random_rates["table_householder"] / random_rates["jaeckel_2006_halley"], 2),
        "price_per_s_per_core_spx": round(prices),
        "iv_cost_in_prices": round(prices / spx_rates["table_householder"], 2),
        "brentq_iv_per_s": round(brentq),
        "iv_spx_vs_brentq": round(spx_rates["table_householder"] / brentq, 1),
    }


if __name__ == "__main__":
    # python -m benchmarks.importers BASELINE_TREE [ROUNDS]: paired_import_rates on the SPX sample
    import json
    import sys

    print(json.dumps(paired_import_rates(spx_sample_files(), Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2
                                         else 12), indent=2))
