"""Results sinks: where a discovery run sends its progress and findings (MLflow by default).

The search talks to a :class:`ResultsSink` with plain data only, on the driver:

    with make_sink(config["name"], tracking_uri, enabled=not no_tracking) as sink:  # MlflowSink | NullSink
        ...                                               # the command's set-up (data, cluster)
        sink.start(resolved_config)                       # once, before generation 0
        for gen in ...:
            sink.log_generation(gen, {"best_fitness": ..., "mean_fitness": ..., "evaluations": ...,
                                      "evals_per_s": ..., "diversity": ...})
        # per reported structure, the report's lockbox backtest (discovery.evaluate.LockboxRun)
        structures = [StructureRecord.from_lockbox(rank, run.result, run.spot, lockbox=run.metrics,
                                                   evaluation=run.replay, in_sample=...,
                                                   out_of_sample=..., honesty=..., verdict=...) for ...]
        sink.log_structures(structures)                   # as soon as the report has scored them
        sink.finish(report, evaluations)                  # once, last (or finish(..., structures))
        # or, when the search dies: sink.fail("why")
        ...                                               # the command's last steps
    # leaving the block waits (bounded) until everything is recorded or spooled

Every call only journals and returns: no MLflow call, MLflow import or plot drawing happens in
the caller's process (a sender process, :mod:`discovery.sender`, does them, while the caller
goes on: the results first, what ``osd top`` reads, then the tables and plots). ``close``
(leaving the ``with`` block) waits until the sender has sent everything, at most
``close_timeout_s`` once the results are in, so that a command does not exit with its plots unsent.

``report`` is the ``discovered_structures.json`` dict, ``evaluations`` a DataFrame with one row
per distinct genome evaluated (genes and fold metrics as plain columns), and ``structures`` one
:class:`StructureRecord` per reported structure. Names the readers rely on: the fitness plot
draws every generation metric whose name contains ``fitness``; ``osd top`` shows ``sharpe`` of
``out_of_sample`` and ``lockbox``, and ``dsr`` and ``pbo`` of ``honesty``.

MLflow layout (DESIGN §7). Experiment ``experiment`` (created once). One parent run (tag
``osd.kind=discovery``): params = the resolved config flattened to dotted keys (values longer than
MLflow's limit are cut, the full config is the artifact ``config.yaml``); metrics = the generation
metrics with ``step = generation``; artifacts ``config.yaml``, ``discovered_structures.json``,
``evaluations.parquet``, ``plots/fitness.png`` and ``plots/rank<NN>_{equity,payoff}.png``. One
child run per structure (tag ``osd.kind=structure``, ``mlflow.parentRunId``): params = the genes
(DNA keys) and ``eval.<key>`` for the evaluation settings; metrics ``rank``, ``is.<k>``,
``oos.<k>``, ``lockbox.<k>``, ``honesty.<k>`` (non-numeric honesty values become tags); tags
``osd.dna`` (the DNA as JSON, what ``osd top --json`` returns), ``osd.evaluation`` (what replays its
lockbox backtest, also in ``osd top --json``) and ``osd.verdict``; artifacts
``dna.json``, ``trade_log.parquet``, ``equity_curve.parquet``, ``equity.png``, ``payoff.png``.
When the report has baselines (DESIGN §9), the parent run also gets ``baselines.json`` and the
metrics ``baseline.<name>.lockbox_<k>``, ``baseline.best_lockbox_sharpe_annual`` and
``discovery_beats_baselines`` (1 or 0).

Where it goes. ``tracking_uri`` if given, else ``MLFLOW_TRACKING_URI``, else MLflow's own local
default in the working directory: ``sqlite:///mlflow.db``, or the
``./mlruns`` file store where one already holds data. ``osd top`` resolves the URI the same way,
so with no configuration it reads what the last run in the same directory wrote.
A sqlite store keeps each experiment's artifacts in ``mlruns/<experiment>`` beside the database file
(:func:`discovery.spool.artifact_location`), wherever the command runs.

Resilience. Writes are journaled to a spool folder first (:mod:`discovery.spool`) and sent, by a
separate sender process, in batches: per-generation metrics go out at most once per
``flush_interval_s`` (consecutive batches are merged into one ``log_batch`` call), so a remote server's ~50 ms per call stays off the
search's critical path. If the server does not answer, the operations stay in the spool and are
retried every ``retry_interval_s``; the search is never interrupted. After ``finish`` the sender
keeps trying for ``finish_timeout_s`` and then leaves the spool, and ``close`` says so, naming
``osd tracking flush --spool DIR``. MLflow's HTTP retries are cut (see :func:`configure_mlflow_client`) so an unreachable
server costs seconds, not minutes.
"""
from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np
import pandas as pd
import yaml

from discovery.plots import PayoffLeg
from discovery.spool import FlushResult, Spool

__all__ = [
    "ResultsSink", "NullSink", "MlflowSink", "StructureRecord", "PayoffLeg", "payoff_legs",
    "make_sink", "resolve_tracking_uri", "configure_mlflow_client", "DEFAULT_SPOOL_DIR",
]

DEFAULT_SPOOL_DIR = Path("mlflow-spool")
KIND_TAG = "osd.kind"
DNA_TAG = "osd.dna"
EVALUATION_TAG = "osd.evaluation"
VERDICT_TAG = "osd.verdict"
EXPERIMENT_TAG = "osd.experiment"
# metric prefixes of a structure's child run, by StructureRecord field
METRIC_PREFIXES = {"in_sample": "is", "out_of_sample": "oos", "lockbox": "lockbox", "honesty": "honesty"}

# MLflow retries an unanswered call 7 times with exponential backoff (minutes) and waits 120 s
# for an answer; the spool retries on its own, so one short attempt is enough. And MLflow's
# client prints two "View run" lines (after one more REST call) for every run it ends; the sink
# prints one line for the whole discovery instead.
CLIENT_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}


def configure_mlflow_client() -> None:
    """Fail fast on an unreachable server and print no run URLs, unless the user set these."""
    for name, value in CLIENT_DEFAULTS.items():
        os.environ.setdefault(name, value)


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """The explicit URI, else ``MLFLOW_TRACKING_URI``, else MLflow's local default (absolute)."""
    import mlflow

    return tracking_uri or mlflow.get_tracking_uri()


@dataclass(frozen=True)
class StructureRecord:
    """Everything reported about one discovered (or rejected) structure.

    - ``dna``: ``StructureDNA.to_dict()``; logged as params (one per gene) and verbatim as JSON
      (``osd top --json`` hands it back, ``StructureDNA.from_dict`` must accept it).
    - ``params``: the evaluation settings (fill model, commission, spans...), ``eval.<key>`` params.
    - ``in_sample``, ``out_of_sample``, ``lockbox``: backtest metric dicts (numbers) on the
      training folds, the walk-forward test folds and the lockbox span. ``osd top`` shows
      ``sharpe`` from the last two.
    - ``honesty``: deflated Sharpe ratio (key ``dsr``), PBO (``pbo``), IS/OOS decay...; numbers
      become metrics, other values tags.
    - ``verdict``: one line, e.g. ``"discovered"`` or ``"rejected: DSR 0.41 < 0.95"``.
    - ``equity_curve``: the lockbox backtest's daily frame with ``date`` and ``equity`` columns.
    - ``trade_log``: its trade log frame.
    - ``legs`` and ``spot``: the structure as entered on a representative day, for the payoff
      diagram; ``multiplier`` is the contract multiplier.
    - ``evaluation``: what replays the lockbox backtest (``discovery.evaluate.replay_record``:
      dataset, underlying, costs, gates' inputs, fold layout, lockbox days); logged as the tag
      ``osd.evaluation`` and carried by ``osd top --json`` to ``osd backtest --dna @FILE``.
    """

    rank: int
    dna: Mapping[str, Any]
    params: Mapping[str, Any]
    in_sample: Mapping[str, float]
    out_of_sample: Mapping[str, float]
    lockbox: Mapping[str, float]
    honesty: Mapping[str, Any]
    verdict: str
    equity_curve: pd.DataFrame
    trade_log: pd.DataFrame
    legs: Sequence[PayoffLeg]
    spot: float
    multiplier: float = 100.0
    evaluation: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_lockbox(cls, rank: int, result: Any, spot: float, *, lockbox: Mapping[str, float],
                     evaluation: Mapping[str, Any], in_sample: Mapping[str, float],
                     out_of_sample: Mapping[str, float], honesty: Mapping[str, Any],
                     verdict: str) -> "StructureRecord":
        """From the lockbox ``backtest.engine.BacktestResult`` and its ``lockbox`` metrics
        (``discovery.evaluate.lockbox_backtest``): its DNA, equity curve and trade log; the payoff
        diagram shows its first trade's legs, entered at ``spot``."""
        trades = result.trades
        params = {"fill": result.fill_model,
                  **{k: evaluation[k] for k in ("dataset", "underlying", "lockbox_dates", "costs") if k in evaluation}}
        return cls(rank=rank, dna=result.dna.to_dict(), params=params, in_sample=in_sample,
                   out_of_sample=out_of_sample, lockbox=lockbox, honesty=honesty, verdict=verdict,
                   equity_curve=result.equity, trade_log=trades,
                   legs=payoff_legs(trades.iloc[0]) if len(trades) else [], spot=spot, evaluation=evaluation)


def payoff_legs(trade: Mapping[str, Any], max_legs: int = 4) -> list[PayoffLeg]:
    """The legs of one row of ``backtest.engine.run(...).trades`` (``leg<i>_right``, ``_qty``
    per structure unit, ``_strike``, ``_entry_fill``), for :attr:`StructureRecord.legs`."""
    return [PayoffLeg(trade[f"leg{i}_right"], float(trade[f"leg{i}_strike"]), float(trade[f"leg{i}_qty"]),
                      float(trade[f"leg{i}_entry_fill"]))
            for i in range(1, max_legs + 1)
            if f"leg{i}_right" in trade and trade[f"leg{i}_right"] in ("C", "P")]


class ResultsSink(Protocol):
    """What the search calls; every method is safe to call from the driver only."""

    def start(self, config: Mapping[str, Any]) -> None:
        """Open the run with the resolved configuration (called once, first)."""

    def log_generation(self, gen: int, metrics: Mapping[str, float]) -> None:
        """Record one generation's metrics (best/mean fitness, evaluations, evals/s, diversity)."""

    def log_structures(self, structures: Sequence[StructureRecord]) -> None:
        """Record the reported structures (child runs, trade logs, plots) as soon as the report
        has scored them, before the run's last steps (the baselines)."""

    def finish(self, report: Mapping[str, Any], evaluations: pd.DataFrame,
               structures: Sequence[StructureRecord] = ()) -> None:
        """Record the results and close the run (called once, last); ``structures`` are those
        not yet given to ``log_structures``."""

    def fail(self, reason: str) -> None:
        """Close the run as failed (instead of ``finish``)."""

    def __enter__(self) -> "ResultsSink":
        """Get ready (an ``MlflowSink`` launches its sender, so it is up when the search starts)."""

    def __exit__(self, *exc_info) -> None:
        """Wait, bounded, until everything is recorded (or spooled) before the command exits."""


def make_sink(experiment: str, tracking_uri: str | None = None, enabled: bool = True, **options) -> "ResultsSink":
    """The sink for a ``discover`` command line: ``MlflowSink`` unless ``--no-tracking``."""
    return MlflowSink(experiment, tracking_uri, **options) if enabled else NullSink()


class NullSink:
    """Records nothing (``--no-tracking``)."""

    def __enter__(self) -> "NullSink":
        return self

    def __exit__(self, *exc_info) -> None:
        pass

    def start(self, config: Mapping[str, Any]) -> None:
        pass

    def log_generation(self, gen: int, metrics: Mapping[str, float]) -> None:
        pass

    def log_structures(self, structures: Sequence[StructureRecord]) -> None:
        pass

    def finish(self, report: Mapping[str, Any], evaluations: pd.DataFrame,
               structures: Sequence[StructureRecord] = ()) -> None:
        pass

    def fail(self, reason: str) -> None:
        pass


@dataclass
class MlflowSink:
    """Streams a discovery run into MLflow through a local spool (see the module docstring).

    The calls journal their operations and return; one sender process (:mod:`discovery.sender`,
    launched by ``open``, i.e. entering a ``with`` block, or else by ``start``) imports MLflow, creates the store, sends the journal and retries
    while the server is away, so neither MLflow's import and store set-up nor a remote server's
    latency is spent on the search's time, and, being a process rather than a thread, it never
    holds the search's GIL. The reported structures' plots are journaled by ``log_structures``
    as soon as the report has scored them, so the sender draws them during the run's last steps.
    After ``finish``/``fail`` it sends the results (trying for at most ``finish_timeout_s`` once
    the server stops answering), then the parent's table and plot, while the caller goes on; :meth:`close` waits for all that, bounded. ``spool_dir``
    is the parent folder; this run's journal is ``spool_dir/<run key>`` (with the sender's log,
    ``sender.log``) and is deleted once everything has reached the server.
    """

    experiment: str
    tracking_uri: str | None = None
    spool_dir: Path = DEFAULT_SPOOL_DIR
    flush_interval_s: float = 2.0
    retry_interval_s: float = 5.0
    finish_timeout_s: float = 15.0
    close_timeout_s: float = 30.0
    run_name: str | None = None
    last_flush: FlushResult | None = field(default=None, init=False)
    parent_run_id: str | None = field(default=None, init=False)  # known once finished
    _history: list[tuple[int, dict[str, float]]] = field(default_factory=list, init=False, repr=False)
    _spool: Spool | None = field(default=None, init=False, repr=False)
    _sender: subprocess.Popen | None = field(default=None, init=False, repr=False)  # discovery.sender
    _run_started: bool = field(default=False, init=False, repr=False)
    _finished: bool = field(default=False, init=False, repr=False)
    _report_read: bool = field(default=False, init=False, repr=False)  # the sender's, on the results
    _parent_files: Path | None = field(default=None, init=False, repr=False)  # the parent's staged files

    PARENT = "parent"

    def __post_init__(self) -> None:
        if not self.experiment:
            raise ValueError("MlflowSink needs an experiment name")

    # ------------------------------------------------------------------ the sink API

    def open(self) -> "MlflowSink":
        """Create the spool and launch the sender (once; ``start`` does it if not done yet). Called
        early, before the search's set-up, it lets the sender import MLflow and open the store
        while the caller is still busy on one core (the demo's validation, a Ray start)."""
        if self._spool is None:
            run_key = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
            self._spool = Spool.create(Path(self.spool_dir) / run_key, self.tracking_uri, self.experiment)
            self._launch_sender()
        return self

    def start(self, config: Mapping[str, Any]) -> None:
        if self._run_started:
            raise RuntimeError("MlflowSink.start called twice")
        self.open()
        self._run_started = True
        self._create_run(self.PARENT, self.run_name or self.experiment, None,
                         {KIND_TAG: "discovery", EXPERIMENT_TAG: self.experiment})
        self._log_params(self.PARENT, flatten_params(config))
        folder = self._spool.stage_dir()
        (folder / "config.yaml").write_text(yaml.safe_dump(_plain(config), sort_keys=False))
        self._log_artifacts(self.PARENT, folder)

    def _launch_sender(self) -> None:
        configure_mlflow_client()  # the sender inherits the environment
        settings = {"spool": str(self._spool.path.resolve()), "tracking_uri": self.tracking_uri,
                    "flush_interval_s": self.flush_interval_s, "retry_interval_s": self.retry_interval_s,
                    "finish_timeout_s": self.finish_timeout_s}
        package_root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        with open(self._spool.path / "sender.log", "ab") as log:
            # its own session: a Ctrl-C of the search does not cut the upload of what was found
            self._sender = subprocess.Popen([sys.executable, "-m", "discovery.sender", json.dumps(settings)],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                                            env=env, start_new_session=True)

    def log_generation(self, gen: int, metrics: Mapping[str, float]) -> None:
        spool = self._started()
        clean = {key: float(value) for key, value in metrics.items()}
        self._history.append((int(gen), clean))
        now = _now_ms()
        for chunk in _chunks([[k, v, now, int(gen)] for k, v in clean.items()], 1000):
            spool.append({"op": "log_batch", "run": self.PARENT, "metrics": chunk, "params": {}, "tags": {}})

    def log_structures(self, structures: Sequence[StructureRecord]) -> None:
        """Journal the reported structures' child runs with their tables, plots and uploads as
        soon as the report has scored them: the sender draws and sends them during the run's
        last steps (the baselines) instead of after the command is done."""
        spool = self._started()
        parent_plots = f"{self._parent_stage().name}/plots"
        for record in sorted(structures, key=lambda r: r.rank):
            folder = spool.stage_dir()
            for op in self._log_structure(record, folder, f"{parent_plots}/rank{record.rank:02d}_"):
                spool.append(op)
            self._log_artifacts(f"structure-{record.rank:02d}", folder)

    def finish(self, report: Mapping[str, Any], evaluations: pd.DataFrame,
               structures: Sequence[StructureRecord] = ()) -> None:
        from discovery.baselines import tracking_metrics

        spool = self._started()
        if structures:
            self.log_structures(structures)
        parent_files = self._parent_stage()
        (parent_files / "discovered_structures.json").write_text(
            json.dumps(_plain(report), indent=2) + "\n")
        if report.get("baselines"):  # did discovery beat the guesses: the section and its figures
            (parent_files / "baselines.json").write_text(json.dumps(_plain(report["baselines"]), indent=2) + "\n")
            self._log_metrics(self.PARENT, tracking_metrics(report))
        file_ops = [self._table(evaluations, parent_files, "evaluations"),
                    self._plot("fitness", [f"{parent_files.name}/plots/fitness.png"],
                               f"{self.experiment}: fitness by generation", history=self._history)]
        results_end = self._end_run(self.PARENT, "FINISHED")
        # after the results (what `osd top` reads), the parent's files: its tables and plots,
        # made by the sender and uploaded while the caller goes on (see discovery.sender)
        for op in file_ops:
            spool.append(op)
        self._log_artifacts(self.PARENT, parent_files)
        self._complete(results_end)

    def fail(self, reason: str) -> None:
        self._started()
        self._log_tags(self.PARENT, {"osd.failure": reason[:7900]})
        self._complete(self._end_run(self.PARENT, "FAILED"))

    def close(self, timeout: float | None = None) -> bool:
        """Wait until the sender has sent everything: the results (for as long as it keeps
        trying, ``finish_timeout_s`` once the server stops answering), then the tables and plots
        (at most ``timeout``, default ``close_timeout_s``, more). A command calls this before it
        exits, so that a machine torn down right after (a Kubernetes RayJob) loses nothing. Says
        where the run is or what is left where; True when everything reached the server and the
        spool is gone. A sink opened but never started leaves nothing behind."""
        if self._sender is None:
            return True
        if not self._run_started:  # nothing to send: no need to wait for the sender's start-up
            self._sender.kill()
            self._sender.wait()
            return self._spool.remove_if_done()
        if not self._finished:  # the caller died between start and finish/fail: send what is there
            self._finished = True
            with contextlib.suppress(BrokenPipeError):
                self._sender.stdin.close()
        if not self._report_read:
            self._report_read = True
            # one more HTTP timeout (MLFLOW_HTTP_REQUEST_TIMEOUT) may be under way at the deadline
            self._read_report(self.finish_timeout_s + float(os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"]) + 30)
        try:
            self._sender.wait(self.close_timeout_s if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            print(f"MLflow: the plots are still being sent by process {self._sender.pid}; what is not sent "
                  f"stays in {self._spool.path} (send it with: osd tracking flush --spool {self._spool.path})",
                  file=sys.stderr)
            return False
        return not self._spool.path.exists()

    def __enter__(self) -> "MlflowSink":
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------------ results

    @property
    def spool_path(self) -> Path | None:
        return self._spool.path if self._spool else None

    # ------------------------------------------------------------------ journaling

    def _started(self) -> Spool:
        if not self._run_started:
            raise RuntimeError("MlflowSink.start must be called first")
        if self._finished:
            raise RuntimeError("MlflowSink is already finished")
        return self._spool

    def _create_run(self, run_key: str, run_name: str, parent: str | None, tags: dict[str, str]) -> None:
        self._started().append({"op": "create_run", "run": run_key, "experiment": self.experiment,
                                "run_name": run_name, "parent": parent, "tags": tags,
                                "start_time": _now_ms()})

    def _log_params(self, run_key: str, params: Mapping[str, str]) -> None:
        for chunk in _chunks(list(params.items()), 100):
            self._started().append({"op": "log_batch", "run": run_key, "metrics": [],
                                    "params": dict(chunk), "tags": {}})

    def _log_metrics(self, run_key: str, metrics: Mapping[str, float]) -> None:
        now = _now_ms()
        for chunk in _chunks([[k, float(v), now, 0] for k, v in metrics.items()], 1000):
            self._started().append({"op": "log_batch", "run": run_key, "metrics": chunk,
                                    "params": {}, "tags": {}})

    def _log_tags(self, run_key: str, tags: Mapping[str, str]) -> None:
        for chunk in _chunks(list(tags.items()), 100):
            self._started().append({"op": "log_batch", "run": run_key, "metrics": [],
                                    "params": {}, "tags": dict(chunk)})

    def _log_artifacts(self, run_key: str, folder: Path) -> None:
        """Upload a staged folder's contents to the run's artifact root (after they are complete)."""
        self._started().append({"op": "log_artifacts", "run": run_key, "artifact_path": None, "files": folder.name})

    @staticmethod
    def _table(frame: pd.DataFrame, folder: Path, name: str) -> dict[str, Any]:
        """Stage ``frame`` as a pickle (a few ms) and return the operation with which the sender
        turns it into ``name.parquet`` (Arrow's conversion costs ~10 ms a table) before the upload."""
        frame.to_pickle(folder / f"{name}.pkl")
        return {"op": "parquet", "table": f"{folder.name}/{name}"}

    @staticmethod
    def _plot(kind: str, to: list[str], title: str, **data: Any) -> dict[str, Any]:
        """A journal operation for the sender to draw a plot (``discovery.plots.render``; ``to``
        relative to the spool's staged files), so that drawing costs the search nothing."""
        return {"op": "render", "plot": {"kind": kind, "to": to, "title": title, **data}}

    def _end_run(self, run_key: str, status: str) -> int:
        """Journal the end of a run; its sequence number."""
        return self._started().append({"op": "end_run", "run": run_key, "status": status, "end_time": _now_ms()})

    def _parent_stage(self) -> Path:
        """The parent run's staged folder (with ``plots/``), created on first use."""
        if self._parent_files is None:
            self._parent_files = self._spool.stage_dir()
            (self._parent_files / "plots").mkdir()
        return self._parent_files

    def _log_structure(self, record: StructureRecord, folder: Path, parent_plots: str) -> list[dict[str, Any]]:
        """Journal one child run and stage its files in ``folder``; return the operations that
        make its tables and draw its plots there (and to ``parent_plots`` + their name), for the
        caller to journal before the upload of ``folder``."""
        run_key = f"structure-{record.rank:02d}"
        structure_type = str(record.dna.get("structure_type", "structure"))
        dna_json = json.dumps(_plain(record.dna), sort_keys=True)
        tags = {KIND_TAG: "structure", DNA_TAG: dna_json, VERDICT_TAG: record.verdict[:7900]}
        if record.evaluation:
            tags[EVALUATION_TAG] = json.dumps(_plain(record.evaluation), sort_keys=True)
        self._create_run(run_key, f"rank{record.rank:02d}-{structure_type}", self.PARENT, tags)
        self._log_params(run_key, {**flatten_params(record.dna),
                                   **flatten_params(record.params, prefix="eval.")})
        metrics: dict[str, float] = {"rank": float(record.rank)}
        text_tags: dict[str, str] = {}
        for name, prefix in METRIC_PREFIXES.items():
            for key, value in getattr(record, name).items():
                if _is_number(value):
                    metrics[f"{prefix}.{key}"] = float(value)
                else:
                    text_tags[f"{prefix}.{key}"] = str(value)[:7900]
        self._log_metrics(run_key, metrics)
        if text_tags:
            self._log_tags(run_key, text_tags)
        (folder / "dna.json").write_text(dna_json + "\n")
        tables = [self._table(record.trade_log, folder, "trade_log"),
                  self._table(record.equity_curve, folder, "equity_curve")]
        title = f"#{record.rank} {structure_type}"
        self._end_run(run_key, "FINISHED")
        curve = record.equity_curve
        return [*tables,
            self._plot("equity", [f"{folder.name}/equity.png", f"{parent_plots}equity.png"],
                       f"{title}: lockbox equity and drawdown",
                       equity={"date": pd.to_datetime(curve["date"]).dt.strftime("%Y-%m-%d").tolist(),
                               "equity": curve["equity"].astype(float).tolist()}),
            self._plot("payoff", [f"{folder.name}/payoff.png", f"{parent_plots}payoff.png"],
                       f"{title}: P&L at expiry", spot=float(record.spot), multiplier=float(record.multiplier),
                       legs=[[leg.right, float(leg.strike), float(leg.qty), float(leg.premium)] for leg in record.legs]),
        ]

    # ------------------------------------------------------------------ the end

    def _complete(self, results_end: int) -> None:
        """Tell the sender the journal is complete; the operations up to ``results_end`` are the
        results, the rest the tables and plots. It sends them while the caller goes on."""
        self._finished = True
        with contextlib.suppress(BrokenPipeError):  # the sender died: close() says so
            self._sender.stdin.write(json.dumps({"results_end": results_end}) + "\n")
            self._sender.stdin.close()

    def _read_report(self, wait: float) -> None:
        """Wait (up to ``wait``) for the sender's report on the results (sent, or given up after
        ``finish_timeout_s`` of unanswered tries), then say where they are or what is left."""
        spool = self._spool
        report = None
        with contextlib.suppress(ValueError):  # the sender died (its log says why)
            if select.select([self._sender.stdout], [], [], wait)[0]:
                line = self._sender.stdout.readline()
                report = json.loads(line) if line.strip() else None
        if report is None or "error" in report:
            why = report["error"] if report else f"the sender process did not answer; see {spool.path / 'sender.log'}"
            print(f"MLflow tracking failed ({why}); the results are kept in {spool.path}. Send them with: "
                  f"osd tracking flush --spool {spool.path}", file=sys.stderr)
            return
        result = self.last_flush = FlushResult(**report["flush"])
        self.tracking_uri, self.parent_run_id = report["tracking_uri"], report["parent_run_id"]
        if result.pending:
            print(f"MLflow at {self.tracking_uri} is unreachable ({result.error}); {result.pending} "
                  f"operations are kept in {spool.path}. Send them later with: "
                  f"osd tracking flush --spool {spool.path}", file=sys.stderr)
        elif (spool.path / "rejected").exists():
            print(f"MLflow rejected some operations; they are kept in {spool.path / 'rejected'}",
                  file=sys.stderr)
        else:
            print(f"MLflow: experiment {self.experiment!r}, run {self.parent_run_id} at {self.tracking_uri}",
                  file=sys.stderr)


# ---------------------------------------------------------------------- helpers

MAX_PARAM_VALUE = 6000  # mlflow.utils.validation.MAX_PARAM_VAL_LENGTH
MAX_KEY = 250  # mlflow.utils.validation.MAX_ENTITY_KEY_LENGTH


def flatten_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings become dotted keys; lists and scalars their JSON text. Values longer than
    MLflow's limit are cut with a marker (the full value is in the ``config.yaml`` artifact)."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, prefix=f"{name}."))
            continue
        text = value if isinstance(value, str) else json.dumps(_plain(value))
        if len(text) > MAX_PARAM_VALUE:
            text = text[:MAX_PARAM_VALUE - 20] + "...[see config.yaml]"
        if len(name) > MAX_KEY:
            raise ValueError(f"parameter name longer than {MAX_KEY} characters: {name[:60]}...")
        flat[name] = text
    return flat


def _plain(value: Any) -> Any:
    """JSON/YAML-safe copy: numpy scalars and arrays, tuples, sets, paths and dates to plain types."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
        return [_plain(v) for v in (sorted(value) if isinstance(value, (set, frozenset)) else value)]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _now_ms() -> int:
    return int(time.time() * 1000)
