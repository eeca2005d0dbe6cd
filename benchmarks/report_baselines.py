"""What the baselines step (``report.baselines: true``) adds to a discovery run, against the run
itself measured in the same process.

One discovery run with the step switched off (serial map), then the step alone on its result:
once with the feature table built from scratch (a dataset without DIR/features, as `osd demo`
on a fresh market) and once with the table already stored (every later run on that dataset).
Full: the demo (configs/demo.yaml) on its market, synthesized into a temporary folder; quick:
the recovery test market (three years, one plant) with the test suite's small config.

    osd bench --suite report_baselines [--quick]
"""
from __future__ import annotations

import copy
import shutil
import tempfile
import time
from pathlib import Path

from discovery import baselines
from discovery.evaluate import market_for
from discovery.run import discover, make_context
from models.features.build import FEATURES_DIR

QUICK_PLANT = [{"name": "rich_calm_puts", "favours": ["short_put", "put_credit_spread"], "right": "P",
                "dte": [20, 40], "abs_delta": [0.15, 0.35], "regimes": ["calm"], "vol_points": 8.0}]


def _market_and_config(root: Path, quick: bool):
    from discovery.config import ReportSpec

    if quick:
        from discovery.recovery import recovery_config, small_market

        market = small_market(root / "market", 3, QUICK_PLANT)
        config = recovery_config(market, seed=5)
    else:
        from backtest.synth import load_plants, synthesize
        from discovery.demo_discovery import demo_config, demo_market

        params, plant_file = demo_market()
        market = synthesize(root / "market", plants=load_plants(plant_file), **params)
        config = demo_config(market)
    return market, config.model_copy(update={"report": ReportSpec(baselines=False)})


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(quick: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="osd-bench-report-baselines-") as tmp:
        root = Path(tmp)
        market, config = _market_and_config(root, quick)
        t0 = time.perf_counter()
        result = discover(config, root / "run")
        discover_s = time.perf_counter() - t0
        context = make_context(config, market)
        market_for(context)
        shutil.rmtree(market / FEATURES_DIR, ignore_errors=True)
        fresh_s = _timed(lambda: baselines.add_to_report(copy.deepcopy(result), context, market))
        stored_s = _timed(lambda: baselines.add_to_report(copy.deepcopy(result), context, market))
        lo, hi = context.layout.lockbox
    return {
        "market": "recovery test market" if quick else "demo", "days": context.layout.n_days,
        "lockbox_days": hi - lo, "discover_without_baselines_s": round(discover_s, 2),
        "baselines_step_fresh_features_s": round(fresh_s, 2), "baselines_step_stored_features_s": round(stored_s, 2),
        "added_share_fresh": round(fresh_s / discover_s, 3), "added_share_stored": round(stored_s / discover_s, 3),
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run("--quick" in sys.argv), indent=2))
