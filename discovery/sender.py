"""The sender process of an :class:`~discovery.tracking.MlflowSink`: sends a run's spool to MLflow.

    python -m discovery.sender '{"spool": DIR, "tracking_uri": URI|null, "flush_interval_s": 2,
                                 "retry_interval_s": 5, "finish_timeout_s": 15}'

A process of its own, so that MLflow's import, the store's creation, every call to the server and
the drawing of the plots never run on the search's interpreter (nor hold its GIL). While the
search runs it sends the journal every ``flush_interval_s`` (``retry_interval_s`` while the server
is away). The sink then writes one line on its stdin, ``{"results_end": SEQ}``: the journal is
complete, and the operations up to SEQ are the results (runs, params, metrics; the reported
structures' tables and plots too, journaled before the run's last steps), those after it the
parent run's tables and plots. The sender sends the results (trying for up to ``finish_timeout_s``), writes
one JSON report line on its stdout (``flush``: the :class:`~discovery.spool.FlushResult` of the
results, ``tracking_uri``, ``parent_run_id``; or ``error``) and, if they all arrived, goes on to
draw and send the plots (the sink's ``close`` waits for that, bounded, before the command exits);
it deletes the spool when everything is sent. End of its stdin without that line (the search's process died) means: send
what is there. What it cannot send stays in the spool for ``osd tracking flush``.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import select
import sys
import time
from pathlib import Path
from typing import IO, Any

from discovery.spool import FlushResult, Spool

PARENT_RUN_KEY = "parent"  # the journal's key of the discovery (parent) run
# below the search's priority: its start-up (MLflow's import, the store) and plots take the CPU
# the search leaves idle instead of slowing it down. The search's evaluators are Ray workers,
# which Ray runs at niceness 15, so the sender must sit below them (at 10 it pre-empted them).
NICENESS = 19


def send_until(spool: Spool, client: Any, until: int | None, deadline: float, retry_interval_s: float) -> FlushResult:
    """Flush the operations up to sequence number ``until`` (None: all), retrying until they are
    sent or ``deadline`` (time.monotonic) has passed."""
    while True:
        result = spool.flush(client, until)
        if not result.pending or time.monotonic() >= deadline:
            return result
        time.sleep(max(0.0, min(retry_interval_s, deadline - time.monotonic())))


def wait_for_close(commands: IO[str], spool: Spool, client: Any, flush_interval_s: float,
                   retry_interval_s: float) -> int | None:
    """Send the journal periodically until the sink says it is complete; the results' last
    sequence number (None: the sink's process ended without saying)."""
    while True:
        result = spool.flush(client)
        wait = retry_interval_s if result.pending else flush_interval_s
        if select.select([commands], [], [], wait)[0]:
            line = commands.readline()
            return json.loads(line)["results_end"] if line.strip() else None


def run(settings: dict, commands: IO[str], report: IO[str]) -> None:
    from mlflow.tracking import MlflowClient

    from discovery.tracking import resolve_tracking_uri

    reported = False
    try:
        uri = resolve_tracking_uri(settings["tracking_uri"])
        spool = Spool.open(Path(settings["spool"]))
        spool.set_tracking_uri(uri)
        client = MlflowClient(uri)
        for module in ("matplotlib.figure", "matplotlib.backends.backend_agg"):
            importlib.import_module(module)  # the plots are drawn when the search ends: import now

        results_end = wait_for_close(commands, spool, client, settings["flush_interval_s"],
                                     settings["retry_interval_s"])
        timeout = settings["finish_timeout_s"]
        result = send_until(spool, client, results_end, time.monotonic() + timeout, settings["retry_interval_s"])
        report.write(json.dumps({"flush": dataclasses.asdict(result), "tracking_uri": uri,
                                 "parent_run_id": spool.run_id(PARENT_RUN_KEY)}) + "\n")
        report.close()
        reported = True
        if result.pending:
            return
        rest = send_until(spool, client, None, time.monotonic() + timeout, settings["retry_interval_s"])
        if not rest.pending:
            spool.remove_if_done()
        else:
            print(f"{rest.pending} operations (plots) not sent ({rest.error}); kept in {spool.path}", file=sys.stderr)
    except BaseException as exc:  # noqa: BLE001 - reported to the sink; the search goes on
        if not reported:
            report.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
        raise


if __name__ == "__main__":
    os.nice(NICENESS)
    run(json.loads(sys.argv[1]), sys.stdin, sys.stdout)
