"""The Dask-on-Ray executor on a real local Ray: same store as the local executor."""
import pytest

from backtest.importers import FormatSpec
from backtest.importers.pipeline import import_files
from backtest.importers.rates import RateSchedule
from backtest.store import Dataset
from tests.test_importers_formats import LONG

ray = pytest.importorskip("ray")
from cluster.runtime import ray_session  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    with ray_session("local", num_cpus=2):
        yield


def test_ray_executor_builds_the_same_store(tmp_path, local_ray):
    from cluster.dask_import import ray_executor

    files = []
    for i, day in enumerate(["04/25/2019", "04/26/2019", "04/29/2019"]):
        f = tmp_path / f"spx_{i}.csv"
        f.write_text(LONG.replace("04/25/2019", day))
        files.append(f)
    rates = RateSchedule.constant(0.02, 0.01)
    on_ray = import_files(files, tmp_path / "ray", FormatSpec("long"), rates, executor=ray_executor())
    local = import_files(files, tmp_path / "local", FormatSpec("long"), rates)
    assert (on_ray.files, on_ray.input_rows, on_ray.imported) == (3, 9, 9)
    assert Dataset(tmp_path / "ray").read_chains("SPX").equals(Dataset(tmp_path / "local").read_chains("SPX"))
    assert on_ray.imported == local.imported
