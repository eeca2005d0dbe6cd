"""ChainIndex on real SPX chains: size per row, trading classes kept apart, links between days."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from backtest.dna import StructureDNA, StructureType
from backtest.engine import run
from backtest.index import ChainIndex
from backtest.schema import CHAIN_SCHEMA, conform
from backtest.store import chain_arrays


@pytest.fixture(scope="module")
def spx(real_data):
    files = sorted((real_data / "spx-2019q2-cboe-delayed").glob("SPX_*.csv.gz"))[:4]
    raw = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    chains = pd.DataFrame({
        "quote_date": pd.to_datetime(raw["quotedate"], format="%m/%d/%Y"),
        "underlying": "SPX", "root": raw["optionroot"].str.extract(r"^([A-Z]+)\d")[0],
        "expiration": pd.to_datetime(raw["expiration"], format="%m/%d/%Y"), "strike": raw["strike"],
        "right": np.where(raw["type"] == "call", "C", "P"), "style": "E", "bid": raw["bid"], "ask": raw["ask"],
        "delta": raw["delta"], "underlying_price": raw["underlying_last"],
    }).sort_values(["quote_date", "expiration", "right", "strike"], ignore_index=True)
    table = conform(pa.Table.from_pandas(chains, preserve_index=False), CHAIN_SCHEMA)
    return chains, ChainIndex.from_arrays(chain_arrays(table), underlying="SPX")


def test_real_chain_index(spx):
    chains, index = spx
    assert index.n_days == 4
    assert index.nbytes / index.n_rows <= 24
    assert index.n_rows + index.dropped_rows == len(chains)
    # SPX and SPXW share expiration dates but are separate groups (a contract's identity)
    roots = {index.roots[r] for r in index.group_root}
    assert roots == {"SPX", "SPXW"}
    group_day = np.repeat(np.arange(index.n_days), np.diff(index.day_group_start))
    assert len(index.group_expiration) > len(set(zip(group_day, index.group_expiration)))
    # next-day links point at the same contract one day later
    linked = np.flatnonzero(index.next_row >= 0)
    assert len(linked) > 0.8 * index.n_rows * 3 / 4
    assert np.array_equal(index.strike[linked], index.strike[index.next_row[linked]])


def test_real_chain_backtest_runs(spx):
    _, index = spx
    dna = StructureDNA(StructureType.IRON_CONDOR, front_dte_min=20, front_dte_max=40, dte_exit=None,
                       max_positions=4, max_position_pct=0.02, max_total_risk_pct=0.5)
    result = run(dna, index.set_read_only())
    assert len(result.trades) == 4  # one entry a day
    legs = result.trades[[f"leg{i}_strike" for i in range(1, 5)]].to_numpy()
    assert (legs[:, 1] < legs[:, 0]).all() and (legs[:, 0] < legs[:, 2]).all() and (legs[:, 2] < legs[:, 3]).all()
    assert np.isfinite(result.equity["equity"]).all()
