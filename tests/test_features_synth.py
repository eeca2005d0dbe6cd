"""End to end on the shared synthetic market (5 years, realistic mode): its ground-truth regime
table is the ``synthetic`` classifier, and the features see the regimes it generated."""
import shutil

import numpy as np
import pandas as pd
import pytest

from backtest.store import Dataset
from models import regimes
from models.features.build import build_features, read_feature_table
from models.gates import RegimeGate, entry_mask


@pytest.fixture(scope="module")
def features(realistic_market, tmp_path_factory):
    # the session's market is shared with other tests: build into a view of it, not into it
    view = tmp_path_factory.mktemp("synth_features") / "view"
    view.mkdir()
    for part in ("chains", "underlyings", "indices", "regimes"):
        (view / part).symlink_to(realistic_market / part, target_is_directory=True)
    shutil.copy(realistic_market / "dataset.json", view)
    [summary] = build_features(view)
    assert summary.missing == ()
    return read_feature_table(view, "SPY"), Dataset(realistic_market).read_regimes("SPY").to_pandas()


def test_synthetic_classifier_is_the_generators_regime_table(features):
    table, truth = features
    assert table.attrs["regime_labels"]["synthetic"] == ["calm", "stressed"]
    truth = truth.set_index(pd.DatetimeIndex(pd.to_datetime(truth["date"])))["regime"].reindex(table.index)
    assert truth.notna().all()
    stressed = (truth == "stressed").to_numpy()
    assert (table["regime_synthetic"].to_numpy() == stressed.astype(float)).all()
    mask = entry_mask(table, table.index.to_numpy(), [RegimeGate("synthetic", ("stressed",))])
    assert (mask == stressed).all() and 0.03 < stressed.mean() < 0.4


def test_features_and_classifiers_see_the_generated_regimes(features):
    table, _ = features
    stressed = table["regime_synthetic"] == 1
    by = table.groupby(stressed)[["atm_iv_30d", "hv_20", "vix", "iv_skew"]].median()
    assert (by.loc[True] > by.loc[False]).all(), by
    assert table["vrp_ratio"].median() > 1.0  # implied above realised on average (realistic mode)
    # most stressed days read as high volatility to the rule table, panic/down-trend to the machine
    rule = table.loc[stressed, "regime_rule"].dropna()
    assert (rule == regimes.RULE_LABELS.index("high_vol")).mean() > 0.7
    machine = table.loc[stressed, "regime_machine"].dropna()
    hot = [regimes.MACHINE_LABELS.index(s) for s in ("HIGH_VOL_PANIC", "TREND_DOWN")]
    assert np.isin(machine, hot).mean() > 0.6
    gmm = table.loc[stressed, "regime_gmm"].dropna()
    assert (gmm == regimes.GMM_LABELS.index("calm")).mean() < 0.2
