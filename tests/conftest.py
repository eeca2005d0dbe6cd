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
