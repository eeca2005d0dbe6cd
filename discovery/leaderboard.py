"""Read the reported structures of a discovery run back from MLflow (``osd top``).

The structures are the child runs (tag ``osd.kind=structure``) of the experiment's latest
finished discovery run, or of a given parent run, in the order the discovery ranked them.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from backtest.errors import UserError
from discovery.spool import PARENT_RUN_TAG, is_unreachable, local_store_path
from discovery.tracking import (
    DNA_TAG,
    EVALUATION_TAG,
    KIND_TAG,
    VERDICT_TAG,
    configure_mlflow_client,
    resolve_tracking_uri,
)


@dataclass(frozen=True)
class RankedStructure:
    rank: int
    dna: dict[str, Any]
    metrics: dict[str, float]
    verdict: str
    run_id: str
    parent_run_id: str
    evaluation: dict[str, Any] | None  # discovery.evaluate.replay_record, None if not logged

    def to_json(self) -> dict[str, Any]:
        """One item of ``osd top --json``: ``dna`` is ``StructureDNA.to_dict()`` as logged,
        ``evaluation`` what ``osd backtest --dna @FILE`` needs to replay its lockbox."""
        return {"rank": self.rank, "dna": self.dna, "metrics": self.metrics, "verdict": self.verdict,
                "run_id": self.run_id, "parent_run_id": self.parent_run_id, "evaluation": self.evaluation}


def top_structures(experiment: str, n: int = 10, tracking_uri: str | None = None,
                   parent_run_id: str | None = None) -> list[RankedStructure]:
    """The ``n`` best-ranked structures of a discovery run; :class:`UserError` on bad input."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if n < 1:
        raise UserError(f"-n must be at least 1, got {n}")
    configure_mlflow_client()
    uri = resolve_tracking_uri(tracking_uri)
    _require_local_store(uri)
    client = MlflowClient(uri)
    try:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            known = sorted(e.name for e in client.search_experiments())
            raise UserError(f"unknown experiment {experiment!r} at {uri} "
                            f"(known: {', '.join(known) if known else 'none'})")
        parent = _parent_run(client, found.experiment_id, experiment, parent_run_id)
        children = client.search_runs(
            [found.experiment_id],
            f"tags.`{PARENT_RUN_TAG}` = '{parent}' and tags.`{KIND_TAG}` = 'structure'",
            max_results=1000,
        )
    except MlflowException as exc:
        if is_unreachable(exc):
            raise UserError(f"cannot reach the MLflow tracking server at {uri} ({_reason(exc)})") from None
        raise UserError(f"MLflow at {uri} refused the query: {exc.message[:300]}") from None
    ranked = sorted(
        (RankedStructure(rank=int(run.data.metrics.get("rank", 0)),
                         dna=json.loads(run.data.tags[DNA_TAG]),
                         metrics=dict(run.data.metrics),
                         verdict=run.data.tags.get(VERDICT_TAG, ""),
                         run_id=run.info.run_id,
                         parent_run_id=parent,
                         evaluation=json.loads(run.data.tags[EVALUATION_TAG]) if EVALUATION_TAG in run.data.tags else None)
         for run in children),
        key=lambda s: s.rank,
    )
    return ranked[:n]


def _parent_run(client, experiment_id: str, experiment: str, parent_run_id: str | None) -> str:
    if parent_run_id:
        runs = client.search_runs([experiment_id], f"attributes.run_id = '{parent_run_id}'")
        if not runs or runs[0].data.tags.get(KIND_TAG) != "discovery":
            raise UserError(f"run {parent_run_id} is not a discovery run of experiment {experiment!r}")
        return parent_run_id
    runs = client.search_runs(
        [experiment_id],
        f"tags.`{KIND_TAG}` = 'discovery' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise UserError(f"experiment {experiment!r} has no finished discovery run yet")
    return runs[0].info.run_id


def _require_local_store(uri: str) -> None:
    """Reading a local store that does not exist would create an empty one: refuse instead."""
    path = local_store_path(uri)
    if path is not None and not path.exists():
        raise UserError(f"no MLflow store at {path} (tracking URI {uri}); run a discovery here first, "
                        "or pass --tracking-uri / set MLFLOW_TRACKING_URI")


def _reason(exc: Exception) -> str:
    """The operating system's words from a failed HTTP call (e.g. "Connection refused")."""
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if match:
        return match.group(1).strip()
    return "timed out" if "timeout" in text.lower() else text.splitlines()[0][:200]
