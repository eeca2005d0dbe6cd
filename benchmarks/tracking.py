"""What MLflow tracking costs the demo's discovery run (configs/demo.yaml on the demo market).

The real pipeline, ``discovery.run.discover`` on the serial executor, runs in a fresh Python
process per measurement (so MLflow's import is paid as ``osd demo`` pays it), in a working
directory of its own for each kind: MLflow's zero-configuration local store, ``sqlite:///mlflow.db``, is
created there by a first tracked run (measured once, separately) and reopened by the later ones,
as when the demo is run again. The runs alternate between ``NullSink`` (A, the baseline) and
``MlflowSink`` (B): A B A B ... after the warm-up runs. Each process uses the sink as ``osd
discover`` does (``with sink: discover(...)``: the sender is launched first, and leaving the
block waits until the plots are sent too) and reports the wall time of that block (the wait at
the end included), the time spent inside sink calls on the search's thread (``start``,
``log_generation``, ``finish``, ``close``: the part of the cost that is on the critical path
whatever else the machine does) and the CPU time of the process and its sender. Figures are
medians over the repetitions; overheads are ratios to the baseline of the same run.

The issue's figure is the cost against the *demo's* wall time, so the full suite also runs the
whole ``osd demo`` (the demo market reused from ``runs/demo``, validation, stats, a private
local Ray, discovery, report; a tracked demo exits only once everything is sent) with and
without ``--no-tracking``, 3 pairs in ABBA order, and reports the median walls, the per-pair
overhead and the critical-path sink time as a share of the demo's wall.

    osd bench --suite tracking [--quick]    (quick: a smaller search, 2 pairs, no whole-demo runs;
                                             full: the demo, 3 pairs, and 3 pairs of whole demos)
    OSD_BENCH_TRACKING_BEFORE=DIR osd bench --suite tracking
                                            (the whole-demo pairs of the checkout at DIR too,
                                             interleaved: a before/after in one run)
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SINKS = ("null", "mlflow")
# set to another checkout's root: the whole-demo pairs run for it too, interleaved ("before")
BEFORE_CHECKOUT = "OSD_BENCH_TRACKING_BEFORE"


class TimedSink:
    """Wraps a sink, adding up the time the caller spends inside each of its methods."""

    def __init__(self, sink):
        self.sink = sink
        self.seconds = {"start": 0.0, "log_generation": 0.0, "log_structures": 0.0, "finish": 0.0, "close": 0.0,
                        "fail": 0.0}

    def __enter__(self):
        self.sink.__enter__()
        return self

    def __exit__(self, *exc_info):
        self.timed("close")()

    def __getattr__(self, name):
        return self.timed(name)

    def timed(self, name):
        method = getattr(self.sink, name)

        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - t
        return timed


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure_one(kind: str, data: str, quick: bool) -> dict:
    """One discovery run in this process (the child side); its timings."""
    t_process = time.perf_counter()
    from discovery.demo_discovery import demo_config
    from discovery.run import discover
    from discovery.tracking import make_sink

    config = demo_config(Path(data))
    if quick:
        config = config.model_copy(update={"search": config.search.model_copy(update={"population": 40,
                                                                                       "generations": 2})})
    # the baseline is a bare NullSink: discover spares it the work only a recording sink needs
    tracked = kind == "mlflow"
    sink = TimedSink(make_sink(config.name)) if tracked else make_sink(config.name, enabled=False)
    cpu0, t0 = _cpu_s(), time.perf_counter()
    with sink:  # as `osd discover` does: the sender starts first, the exit waits for the plots
        result = discover(config, Path("out"), sink=sink)
    wall = time.perf_counter() - t0
    if tracked:
        assert not sink.sink.spool_path.exists(), "the sender did not send everything"
    cpu = _cpu_s() - cpu0  # the sender's too, once it has ended
    seconds = sink.seconds if tracked else dict.fromkeys(("start", "log_generation", "finish", "close"), 0.0)
    return {"wall_s": wall, "cpu_s": cpu,
            "in_sink_s": sum(seconds.values()), **{f"in_{k}_s": v for k, v in seconds.items() if k != "fail"},
            "process_wall_s": time.perf_counter() - t_process, "structures": len(result["discovered_structures"])}


def _spawn(kind: str, data: Path, quick: bool, cwd: Path) -> dict:
    """One measurement in a fresh ``python`` process working in ``cwd``."""
    t = time.perf_counter()
    child = (f"import json; from benchmarks.tracking import measure_one; "
             f"print(json.dumps(measure_one({kind!r}, {str(data)!r}, {quick!r})))")
    done = subprocess.run([sys.executable, "-c", child], cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child ({kind}) failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["interpreter_wall_s"] = time.perf_counter() - t  # the whole `python` process
    return figures


def _demo_wall(tracking: bool, cwd: Path, checkout: Path = REPO) -> float:
    """The wall time of one whole ``osd demo`` of ``checkout`` in a fresh process (its MLflow
    store in ``cwd``; the demo market is this checkout's ``runs/demo``)."""
    command = [sys.executable, "-m", "discovery", "demo", "--out", str(REPO / "runs" / "demo")]
    t = time.perf_counter()
    done = subprocess.run(command + ([] if tracking else ["--no-tracking"]), cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(checkout)})
    if done.returncode != 0:
        raise RuntimeError(f"osd demo ({checkout}) failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - t


def whole_demo(pairs: int, checkouts: dict[str, Path]) -> dict:
    """``osd demo`` with tracking against ``osd demo --no-tracking``, ABBA-ordered pairs, for
    each checkout (label -> source tree; several: a before/after comparison, their pairs
    interleaved so that a change of the machine's load hits each alike)."""
    walls = {label: {False: [], True: []} for label in checkouts}
    # a sender killed with its demo (not expected) may leave files behind in the folder
    with tempfile.TemporaryDirectory(prefix="bench-tracking-demo-", ignore_cleanup_errors=True) as tmp:
        for label, checkout in checkouts.items():  # warm-up: numba's cache, MLflow's store below
            folder = Path(tmp) / label
            folder.mkdir()
            _demo_wall(False, folder, checkout)
            _demo_wall(True, folder, checkout)
        for i in range(pairs):
            order = list(checkouts.items())
            for label, checkout in (order if i % 2 == 0 else order[::-1]):
                for tracking in ((False, True) if i % 2 == 0 else (True, False)):
                    walls[label][tracking].append(_demo_wall(tracking, Path(tmp) / label, checkout))
    figures = {}
    for label, kinds in walls.items():
        prefix = "" if len(checkouts) == 1 else f"{label}_"
        figures.update({
            f"{prefix}demo_wall_s_each": {"no_tracking": [round(w, 2) for w in kinds[False]],
                                          "tracking": [round(w, 2) for w in kinds[True]]},
            f"{prefix}demo_baseline_wall_s": round(statistics.median(kinds[False]), 2),
            f"{prefix}demo_tracked_wall_s": round(statistics.median(kinds[True]), 2),
            f"{prefix}demo_wall_overhead_share": round(statistics.median(
                t / b - 1 for b, t in zip(kinds[False], kinds[True])), 4)})
    return figures


def run(quick: bool) -> dict:
    from discovery.demo_discovery import demo_config
    from discovery.run import dataset_path

    pairs = 2 if quick else 3
    cwd = os.getcwd()
    os.chdir(REPO)  # the demo config's synthetic-market cache (runs/data) is relative to the repo
    try:
        data = dataset_path(demo_config(), progress=False).resolve()
    finally:
        os.chdir(cwd)
    runs: dict[str, list[dict]] = {kind: [] for kind in SINKS}
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        folders = {kind: Path(tmp) / kind for kind in SINKS}
        for folder in folders.values():
            folder.mkdir()
        _spawn("null", data, quick, folders["null"])  # warm-up: numba's on-disk cache, the page cache
        # the first tracked run in a directory creates MLflow's store there; later runs (what a
        # user re-running the demo sees) reopen it
        first = _spawn("mlflow", data, quick, folders["mlflow"])
        for _ in range(pairs):
            for kind in SINKS:  # interleaved: A B A B, so a change of the machine's load hits both
                runs[kind].append(_spawn(kind, data, quick, folders[kind]))
    base, tracked = runs["null"], runs["mlflow"]

    def median(rows: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    figures: dict = {"pairs": pairs, "structures": tracked[0]["structures"], "load_avg_1m": os.getloadavg()[0]}
    for key in ("wall_s", "cpu_s", "interpreter_wall_s"):
        figures[f"baseline_{key}"] = round(median(base, key), 2)
        figures[f"tracked_{key}"] = round(median(tracked, key), 2)
    # per pair, so that a load change between pairs does not enter the ratio
    figures["wall_overhead_share"] = round(statistics.median(
        b["wall_s"] / a["wall_s"] - 1 for a, b in zip(base, tracked)), 4)
    figures["interpreter_wall_overhead_share"] = round(statistics.median(
        b["interpreter_wall_s"] / a["interpreter_wall_s"] - 1 for a, b in zip(base, tracked)), 4)
    figures["cpu_overhead_share"] = round(statistics.median(b["cpu_s"] / a["cpu_s"] - 1 for a, b in zip(base, tracked)), 4)
    for key in ("in_sink_s", "in_start_s", "in_log_generation_s", "in_log_structures_s", "in_finish_s", "in_close_s"):
        figures[f"tracked_{key}"] = round(median(tracked, key), 3)
    figures["in_sink_share"] = round(median(tracked, "in_sink_s") / median(base, "wall_s"), 4)
    figures["first_run_in_sink_s"] = round(first["in_sink_s"], 3)  # with the store's creation
    figures["first_run_wall_s"] = round(first["wall_s"], 2)
    figures["wall_s_each"] = {kind: [round(r["wall_s"], 2) for r in rows] for kind, rows in runs.items()}
    if not quick:
        checkouts = {"after": REPO}
        if os.environ.get(BEFORE_CHECKOUT):  # an earlier version's source tree, for a before/after
            checkouts = {"before": Path(os.environ[BEFORE_CHECKOUT]), **checkouts}
        figures.update(whole_demo(pairs, checkouts))
        baseline = figures["after_demo_baseline_wall_s" if len(checkouts) > 1 else "demo_baseline_wall_s"]
        figures["in_sink_share_of_demo"] = round(median(tracked, "in_sink_s") / baseline, 4)
    return figures
