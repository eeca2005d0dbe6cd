"""Running an import as a Dask graph on Ray (``osd data import --executor ray``).

One delayed task per input file (backtest.importers.pipeline.import_file), executed by Ray's
Dask scheduler (``ray.util.dask.ray_dask_get``). Tasks write their parts into the import's
staging directory, so on a multi-node cluster the output dataset must live on storage that
every node mounts at the same path; the driver commits the store once every task succeeded.
"""
from __future__ import annotations

from collections.abc import Iterator
from backtest.importers.pipeline import Executor, FileReport, FileTask, import_file
from cluster.runtime import ray_session


def ray_executor(address: str | None = None, num_cpus: int | None = None) -> Executor:
    """An executor that runs file tasks on Ray: the running one if this process is connected,
    else one started (or joined, with `address`) for the duration of the import."""

    def run(tasks: list[FileTask]) -> Iterator[FileReport]:
        import dask
        from ray.util.dask import enable_dask_on_ray, ray_dask_get

        with ray_session(address, num_cpus=num_cpus), enable_dask_on_ray():
            graph = [dask.delayed(import_file, pure=True)(task, dask_key_name=f"import-{task.part}")
                     for task in tasks]
            reports = dask.compute(*graph, scheduler=ray_dask_get)
        yield from reports

    return run
