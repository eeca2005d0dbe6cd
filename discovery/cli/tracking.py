"""``osd tracking ...``: maintenance of MLflow tracking (sending spooled results)."""
from __future__ import annotations

from pathlib import Path

import click

from backtest.errors import UserError
from discovery.tracking import DEFAULT_SPOOL_DIR


@click.group()
def tracking() -> None:
    """MLflow tracking maintenance: send results spooled while the server was unreachable."""


@tracking.command()
@click.option("--spool", "spool_dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_SPOOL_DIR, show_default=True,
              help="One run's spool folder, or a folder of them (the sink's spool_dir).")
@click.option("--tracking-uri", default=None,
              help="The same server under another address (default: the URI the run was logging to).")
def flush(spool_dir: Path, tracking_uri: str | None) -> None:
    """Send spooled MLflow operations to the server, in order; delete each spool once sent."""
    from mlflow.tracking import MlflowClient

    from discovery.spool import SPOOL_FILE, Spool
    from discovery.tracking import configure_mlflow_client, resolve_tracking_uri

    if not spool_dir.is_dir():
        raise UserError(f"no spool folder at {spool_dir}")
    folders = [spool_dir] if (spool_dir / SPOOL_FILE).exists() else sorted(
        p for p in spool_dir.iterdir() if (p / SPOOL_FILE).exists())
    if not folders:
        raise UserError(f"{spool_dir} holds no tracking spool (no {SPOOL_FILE} in it or its subfolders)")
    configure_mlflow_client()
    left = 0
    for folder in folders:
        spool = Spool.open(folder)
        uri = tracking_uri or spool.tracking_uri or resolve_tracking_uri()
        result = spool.flush(MlflowClient(uri))
        state = "done" if not result.pending else f"{result.pending} left ({result.error})"
        click.echo(f"{folder}: sent {result.sent} operations to {uri}, {state}"
                   + (f", {result.rejected} rejected (see {folder / 'rejected'})" if result.rejected else ""))
        if not result.pending:
            spool.remove_if_done()
        left += result.pending
    if left:
        raise UserError(f"{left} operations still spooled; the tracking server did not answer")
