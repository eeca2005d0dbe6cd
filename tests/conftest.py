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
