"""Options features on real SPX chains (Cboe, spring 2019, SPX and SPXW roots, no theta/vega)
checked against the real VIX: the 30-day ATM IV must track it a little below (VIX is a
variance-swap rate, lifted by the put skew)."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from backtest.schema import CHAIN_SCHEMA, conform
from backtest.store import chain_arrays, sort_chains
from models.features.options import daily_raw, missing_chain_columns, options_features

DAYS = ["20190425", "20190426", "20190502", "20190503", "20190506", "20190507", "20190509", "20190513",
        "20190514", "20190531", "20190603", "20190620", "20190712"]


@pytest.fixture(scope="module")
def spx(real_data):
    df = pd.concat([pd.read_csv(real_data / "spx-2019q2-cboe-delayed" / f"SPX_{d}.csv.gz") for d in DAYS])
    table = pd.DataFrame({
        "quote_date": pd.to_datetime(df["quotedate"], format="%m/%d/%Y").dt.date, "underlying": df["underlying"],
        "root": df["optionroot"].str.extract(r"^([A-Z]+)")[0],
        "expiration": pd.to_datetime(df["expiration"], format="%m/%d/%Y").dt.date, "strike": df["strike"],
        "right": np.where(df["type"] == "call", "C", "P"), "style": "E", "bid": df["bid"], "ask": df["ask"],
        "volume": df["volume"], "open_interest": df["openinterest"], "iv": df["impliedvol"],
        "delta": df["delta"], "gamma": df["gamma"], "underlying_price": df["underlying_last"]})
    chain = chain_arrays(sort_chains(conform(pa.Table.from_pandas(table, preserve_index=False), CHAIN_SCHEMA)))
    vix = pd.read_csv(real_data / "vix-daily" / "vix-daily.csv", parse_dates=["DATE"]).set_index("DATE")["CLOSE"]
    f = options_features(daily_raw(chain))
    return chain, f, vix.reindex(f.index)


def test_atm_iv_tracks_vix_and_skew_is_put_rich(spx):
    chain, f, vix = spx
    gap = vix - 100 * f["atm_iv_30d"]
    assert ((gap > 0) & (gap < 4)).all(), gap
    assert np.corrcoef(f["atm_iv_30d"], vix)[0, 1] > 0.95
    assert (f["iv_skew"] > 0.02).all() and (f["atm_iv_90d"] > 0).all()


def test_dealer_gamma_turns_negative_in_the_may_2019_selloff(spx):
    _, f, _ = spx
    assert f.loc["2019-04-26", "gex_total_bn"] > 0 and f.loc["2019-07-12", "gex_total_bn"] > 0
    assert f.loc["2019-05-13", "gex_total_bn"] < 0  # S&P -2.4% that day
    flip = f["gamma_flip_distance_pct"]
    assert flip.notna().all() and (flip.abs() < 0.05).all()


def test_missing_theta_and_vega_blank_only_their_net_greeks(spx):
    chain, f, _ = spx
    assert missing_chain_columns(chain) == ["theta", "vega"]
    assert f[["net_theta", "net_vega"]].isna().all().all()
    assert f[["net_delta", "net_gamma", "pcr_oi", "roll_ratio"]].notna().all().all()
