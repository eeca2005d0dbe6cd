"""A local journal of pending MLflow operations, replayed in order when the server answers.

Every write the tracking sink makes goes through a :class:`Spool` first: the operation becomes
one JSON file ``ops/<seq>.json`` (written under a temporary name, then renamed, so a crash never
leaves half an operation) and its local files are staged under ``files/<name>/``. :meth:`Spool.flush`
sends the pending operations in sequence order and deletes each one once the server has it.
When the server cannot be reached, flushing stops at the first such failure and the rest stays
on disk, so a later flush (from the same process, or ``osd tracking flush --spool DIR`` from
another) resumes exactly there.

Replaying is idempotent, so an operation that reached the server but whose deletion did not
happen (a crash in between) is harmless when sent again: metrics carry the timestamp taken when
they were journaled (MLflow drops exact duplicates), params are re-logged with the same value,
artifacts overwrite themselves, and a run is created under a unique ``osd.run_key`` tag that is
looked up before creating it a second time.

Operations (plain dicts, ``"op"`` names the kind; runs are named by a journal-local key because
their MLflow ids are unknown until the server has created them):

- ``create_run``: run, experiment, run_name, parent (run key or None), tags, start_time
- ``log_batch``: run, metrics ``[[key, value, timestamp_ms, step], ...]``, params, tags
- ``log_artifacts``: run, artifact_path (or None), files (the staged folder's name)

Sequence numbers are given in the order operations are appended, and an operation is appended
only once its files are complete, so a concurrent flush always sees a prefix of the journal.
- ``end_run``: run, status, end_time
- ``render``: plot (a ``discovery.plots.render`` spec; paths relative to ``files/``): drawn by the
  sender, not the search, into folders a later ``log_artifacts`` uploads
- ``parquet``: table (``<folder>/<name>`` under ``files/``): the staged ``<name>.pkl`` (the sink's
  own pickle) becomes ``<name>.parquet``, before the ``log_artifacts`` of its folder
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlparse


if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

RUN_KEY_TAG = "osd.run_key"
PARENT_RUN_TAG = "mlflow.parentRunId"
SPOOL_FILE = "spool.json"  # tracking URI and experiment of this spool
STATE_FILE = "runs.json"  # run key -> MLflow run id, experiment name -> id, runs whose creation was tried

# Where an MLflow server answers errors with these codes, or cannot be reached at all, the
# operation is kept and retried later; any other error is a rejection of the operation itself.
TRANSIENT_ERROR_CODES = {"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE"}
# MLflow's per-call limits of log_batch (mlflow.utils.validation); kept here so that importing
# this module (the search's driver does) does not import MLflow
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000


def is_unreachable(exc: BaseException) -> bool:
    """True when ``exc`` means "the tracking server did not answer", not "it refused this"."""
    if isinstance(exc, OSError):  # requests' ConnectionError/Timeout are OSErrors
        return True
    return getattr(exc, "error_code", None) in TRANSIENT_ERROR_CODES  # an MlflowException


def local_store_path(uri: str) -> Path | None:
    """The file or folder of a local MLflow store (``sqlite:///rel.db``, ``sqlite:////abs.db``,
    ``file:`` or a plain path); None for a server."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        return Path(unquote(uri[len("sqlite:///"):]))
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    return None


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment of a sqlite store keeps its artifacts: ``mlruns/<experiment>``
    beside the database file. MLflow's own default is ``./mlruns/<experiment id>`` in whatever
    the working directory is (for the default ``sqlite:///mlflow.db``, the same folder); the id
    is not known before the experiment exists, so the folder is named after the experiment,
    whose name is unique in its store. None: the store decides (servers, file stores)."""
    path = local_store_path(uri) if uri.startswith("sqlite:") else None
    return None if path is None else (path.resolve().parent / "mlruns" / quote(experiment, safe="")).as_uri()


@dataclass(frozen=True)
class FlushResult:
    sent: int  # operations the server acknowledged in this flush
    pending: int  # operations still on disk
    rejected: int  # operations the server refused (moved to rejected/, with the error)
    error: str | None  # why flushing stopped early, when it did


class Spool:
    """The journal of one tracked run. Create it with :meth:`create`, reopen it with :meth:`open`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        meta = json.loads((self.path / SPOOL_FILE).read_text())
        self.tracking_uri: str | None = meta["tracking_uri"]  # None: not resolved before a crash
        self.experiment: str = meta["experiment"]
        self._state: dict[str, dict[str, str]] = (
            json.loads((self.path / STATE_FILE).read_text())
            if (self.path / STATE_FILE).exists()
            else {"runs": {}, "experiments": {}, "attempted": []}
        )
        existing = self.pending_seqs()
        self._next_seq = existing[-1] + 1 if existing else 0

    @classmethod
    def create(cls, path: Path, tracking_uri: str | None, experiment: str) -> "Spool":
        """A new journal; ``tracking_uri`` may follow later (:meth:`set_tracking_uri`)."""
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            raise FileExistsError(f"spool directory {path} is not empty")
        (path / "ops").mkdir(parents=True, exist_ok=True)
        _write_json({"tracking_uri": tracking_uri, "experiment": experiment}, path / SPOOL_FILE)
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> "Spool":
        if not (Path(path) / SPOOL_FILE).exists():
            raise FileNotFoundError(f"{path} is not a tracking spool (no {SPOOL_FILE})")
        return cls(path)

    def set_tracking_uri(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        _write_json({"tracking_uri": tracking_uri, "experiment": self.experiment}, self.path / SPOOL_FILE)

    # ------------------------------------------------------------------ writing

    def run_id(self, run_key: str) -> str | None:
        """The MLflow id of a journaled run, once the server has created it."""
        return self._state["runs"].get(run_key)

    def stage_dir(self) -> Path:
        """A new empty folder for the files of an operation still to be appended."""
        folder = self.path / "files" / uuid.uuid4().hex
        folder.mkdir(parents=True)
        return folder

    def append(self, op: dict[str, Any]) -> int:
        """Journal ``op`` (atomically) and return its sequence number."""
        seq = self._next_seq
        self._next_seq += 1
        _write_json(op, self.path / "ops" / f"{seq:08d}.json")
        return seq

    def pending_seqs(self) -> list[int]:
        return sorted(int(p.stem) for p in (self.path / "ops").glob("*.json"))

    # ------------------------------------------------------------------ replaying

    def flush(self, client: MlflowClient, until: int | None = None) -> FlushResult:
        """Send pending operations (up to sequence number ``until``, if given) in order; stop at
        the first sign the server is unreachable."""
        sent = rejected = 0
        seqs = [seq for seq in self.pending_seqs() if until is None or seq <= until]
        i = 0
        while i < len(seqs):
            group = self._batch_group(seqs, i)
            exc = self._send(client, group)
            if exc is not None and not is_unreachable(exc) and len(group) > 1:
                # a merged batch was refused: send its first part alone to find the culprit
                group = group[:1]
                exc = self._send(client, group)
            if exc is None:
                self._ack(group)
                sent += len(group)
            elif is_unreachable(exc):
                return FlushResult(sent, len(seqs) - i, rejected, _short(exc))
            else:
                # a refusal of the operation itself (a bug or a bad value): keep it for
                # inspection, tell the user, and go on with the rest
                self._reject(group[0], exc)
                rejected += 1
            i += len(group)
        return FlushResult(sent, 0, rejected, None)

    def _send(self, client: MlflowClient, group: list[int]) -> Exception | None:
        try:
            self._apply(client, group[0], [self._read(seq) for seq in group])
        except Exception as exc:  # noqa: BLE001 - the caller classifies it
            return exc
        return None

    def _read(self, seq: int) -> dict[str, Any]:
        return json.loads((self.path / "ops" / f"{seq:08d}.json").read_text())

    def _batch_group(self, seqs: list[int], start: int) -> list[int]:
        """Consecutive ``log_batch`` operations on one run that fit together in one REST call."""
        first = self._read(seqs[start])
        if first["op"] != "log_batch":
            return [seqs[start]]
        group, metrics, params, tags = [seqs[start]], *_batch_sizes(first)
        for seq in seqs[start + 1:]:
            op = self._read(seq)
            if op["op"] != "log_batch" or op["run"] != first["run"]:
                break
            m, p, t = _batch_sizes(op)
            if (metrics + m > MAX_METRICS_PER_BATCH or params + p > MAX_PARAMS_TAGS_PER_BATCH
                    or tags + t > MAX_PARAMS_TAGS_PER_BATCH
                    or metrics + m + params + p + tags + t > MAX_ENTITIES_PER_BATCH):
                break
            group.append(seq)
            metrics, params, tags = metrics + m, params + p, tags + t
        return group

    def _apply(self, client: MlflowClient, seq: int, ops: list[dict[str, Any]]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        op = ops[0]
        kind = op["op"]
        if kind == "create_run":
            self._create_run(client, op)
        elif kind == "log_batch":
            run_id = self._require_run(op["run"])
            client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), int(ts), int(step))
                         for o in ops for k, v, ts, step in o["metrics"]],
                params=[Param(k, v) for o in ops for k, v in o["params"].items()],
                tags=[RunTag(k, v) for o in ops for k, v in o["tags"].items()],
                synchronous=True,
            )
        elif kind == "log_artifacts":
            client.log_artifacts(self._require_run(op["run"]), str(self.path / "files" / op["files"]),
                                 op["artifact_path"])
        elif kind == "end_run":
            client.set_terminated(self._require_run(op["run"]), op["status"], int(op["end_time"]))
        elif kind == "parquet":  # a table the sink staged as a pickle, for the upload
            import pandas as pd

            staged = self.path / "files" / f"{op['table']}.pkl"
            if staged.exists():  # else: converted by an earlier try
                pd.read_pickle(staged).to_parquet(staged.with_suffix(".parquet"), index=False)
                staged.unlink()
        elif kind == "render":
            from discovery.plots import render

            render(op["plot"], self.path / "files")
        else:
            raise ValueError(f"unknown spool operation {kind!r} in {self.path}")

    def _experiment_id(self, client: MlflowClient, name: str) -> str:
        known = self._state["experiments"].get(name)
        if known:
            return known
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                experiment_id = client.create_experiment(name, artifact_location(client.tracking_uri, name))
            except Exception as exc:
                if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS":  # another driver created it meanwhile
                    raise
                experiment_id = client.get_experiment_by_name(name).experiment_id
        else:
            experiment_id = experiment.experiment_id
        self._state["experiments"][name] = experiment_id
        self._save_state()
        return experiment_id

    def _create_run(self, client: MlflowClient, op: dict[str, Any]) -> None:
        if op["run"] in self._state["runs"]:
            return
        experiment_id = self._experiment_id(client, op["experiment"])
        # a retry after an attempt whose answer never came back (a crash, a timeout) may find
        # the run already created: reuse it. A first attempt skips the lookup's round trip.
        found = None
        if op["run"] in self._state["attempted"]:
            found = client.search_runs([experiment_id], f"tags.`{RUN_KEY_TAG}` = '{op['run']}'", max_results=1)
        else:
            self._state["attempted"].append(op["run"])
            self._save_state()
        if found:
            run_id = found[0].info.run_id
        else:
            tags = {**op["tags"], RUN_KEY_TAG: op["run"]}
            if op["parent"]:
                tags[PARENT_RUN_TAG] = self._require_run(op["parent"])
            run_id = client.create_run(experiment_id, start_time=int(op["start_time"]), tags=tags,
                                       run_name=op["run_name"]).info.run_id
        self._state["runs"][op["run"]] = run_id
        self._save_state()

    def _require_run(self, run_key: str) -> str:
        run_id = self._state["runs"].get(run_key)
        if run_id is None:  # only possible if its create_run was rejected
            raise ValueError(f"run {run_key!r} was never created on the server")
        return run_id

    def _save_state(self) -> None:
        _write_json(self._state, self.path / STATE_FILE)

    def _ack(self, seqs: list[int]) -> None:
        for seq in seqs:
            files = self._read(seq).get("files")
            if files:
                shutil.rmtree(self.path / "files" / files, ignore_errors=True)
            (self.path / "ops" / f"{seq:08d}.json").unlink()

    def _reject(self, seq: int, exc: BaseException) -> None:
        rejected = self.path / "rejected"
        rejected.mkdir(exist_ok=True)
        op = self._read(seq)
        op["error"] = str(exc)
        _write_json(op, rejected / f"{seq:08d}.json")
        (self.path / "ops" / f"{seq:08d}.json").unlink()
        log.warning("MLflow rejected spooled operation %s (%s): %s; kept in %s",
                    seq, op["op"], _short(exc), rejected)

    def remove_if_done(self) -> bool:
        """Delete the spool folder (and its parent, if that is left empty) when nothing is
        pending or rejected; True if deleted."""
        if self.pending_seqs() or (self.path / "rejected").exists():
            return False
        shutil.rmtree(self.path)
        with contextlib.suppress(OSError):  # not empty: other runs' spools
            self.path.parent.rmdir()
        return True


def _write_json(obj: Any, path: Path) -> None:
    """Write under a temporary name, then rename: a reader never sees half a file. (Not
    ``backtest.store``'s writer: importing that module, with its Arrow datasets, would double the
    sender process's start-up.)"""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                     delete=False) as tmp:
        try:
            json.dump(obj, tmp, sort_keys=True, default=str)
        except BaseException:
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, path)


def _batch_sizes(op: dict[str, Any]) -> tuple[int, int, int]:
    return len(op["metrics"]), len(op["params"]), len(op["tags"])


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
