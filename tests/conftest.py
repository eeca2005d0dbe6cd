import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OSD_SHARED", REPO.parent / "shared"))
REAL_DATA = SHARED / "data" / "real"


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL_DATA.exists():
        pytest.fail(f"real data samples not found at {REAL_DATA} (set OSD_SHARED)")
    return REAL_DATA


@pytest.fixture(scope="session")
def k8s_schemas() -> Path:
    """The KubeRay CRDs for offline validation (shared/k8s-schemas; never copied into the repo)."""
    path = SHARED / "k8s-schemas"
    if not path.exists():
        pytest.fail(f"Kubernetes CRD schemas not found at {path} (set OSD_SHARED)")
    return path


# ---------------------------------------------------------------- synthetic markets (shared)
# Five years of a SPY-like underlying in each mode, generated once per test session.
SYNTH_SPAN = ("2019-01-01", "2023-12-31")
SYNTH_SEED = 2


@pytest.fixture(scope="session")
def example_plants():
    from backtest.synth import load_plants

    return load_plants(REPO / "configs" / "planted_example.yaml")


@pytest.fixture(scope="session")
def realistic_market(tmp_path_factory) -> Path:
    from backtest.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("synth") / "realistic", "SPY", *SYNTH_SPAN, seed=SYNTH_SEED)


@pytest.fixture(scope="session")
def null_market(tmp_path_factory) -> Path:
    from backtest.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("synth") / "null", "SPY", *SYNTH_SPAN, seed=SYNTH_SEED, mode="null")


@pytest.fixture(scope="session")
def planted_market(tmp_path_factory, example_plants) -> Path:
    from backtest.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("synth") / "planted", "SPY", *SYNTH_SPAN, seed=SYNTH_SEED,
                      mode="planted", plants=example_plants)


# ---------------------------------------------------------------- one small discovery run (shared)
# test_discover, test_cluster and test_discovery_baselines compare against the same serial run;
# here, so that the session runs it once (a fixture imported into several modules runs in each).


@pytest.fixture(scope="session")
def small_planted_market(tmp_path_factory) -> Path:
    from discovery.recovery import small_market
    from tests.test_discover import PLANT

    return small_market(tmp_path_factory.mktemp("discover") / "market", 3, PLANT)


@pytest.fixture(scope="session")
def serial_run(small_planted_market, tmp_path_factory) -> Path:
    """The reference run, tracked into a local MLflow store (``out/mlflow.db``, experiment "small")."""
    from discovery.run import discover
    from discovery.tracking import MlflowSink
    from tests.mlflow_server import fresh_sqlite_store
    from tests.test_discover import small_config

    out = tmp_path_factory.mktemp("serial")
    with MlflowSink("small", tracking_uri=fresh_sqlite_store(out / "mlflow.db"), spool_dir=out / "spool") as sink:
        discover(small_config(small_planted_market), out, sink=sink)
    return out


class Interrupted(Exception):
    """Raised by :func:`interrupt_after` to stop a search mid-run, as Ctrl-C would."""


def interrupt_after(generation: int):
    """An ``on_generation`` hook that interrupts the run once ``generation`` is done."""
    def hook(record):
        if record["generation"] == generation:
            raise Interrupted
    return hook
