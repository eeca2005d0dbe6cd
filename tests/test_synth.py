"""The synthetic market: realism of `realistic`, fairness of `null`, the plants of `planted`,
listing rules and determinism. Markets are generated once per session (conftest.py)."""
import datetime as dt

import numpy as np
import pyarrow.compute as pc
import pytest

from backtest.market_stats import dataset_stats
from backtest.store import Dataset
from backtest.synth import MarketModel, synthesize
from tests.held_to_expiry import Market, newey_west_t

T_CRIT = 2.58  # two-sided 1%
HOLD_LAGS = 25  # ~30 calendar days held = overlapping trades up to ~21-25 entries apart


@pytest.fixture(scope="module")
def realistic_stats(realistic_market):
    return dataset_stats(str(realistic_market))["underlyings"]["SPY"]


def test_realistic_market_realism(realistic_stats):
    s = realistic_stats
    assert s["days"] == 1258 and 1000 * s["days"] <= s["rows"] <= 3000 * s["days"]
    assert 0.14 <= s["atm_iv_30d_mean"] <= 0.22
    assert 1.0 <= s["vrp_vol_points_mean"] <= 5.0
    assert s["put_skew_share"] > 0.90
    assert s["term_up_share"] > 0.5
    assert s["term_up_share_by_regime"]["calm"] > 0.5
    assert s["term_up_share_by_regime"]["stressed"] < 0.5  # inverted in stress
    assert 0.0 < s["regime_share"]["stressed"] < 0.25
    assert s["max_drawdown"] > 0.15
    assert s["crossed_quotes"] == 0 and s["negative_quotes"] == 0
    assert s["arbitrage_violation_rate"] < 0.001


def test_realistic_listing_and_quotes(realistic_market):
    ds = Dataset(realistic_market)
    t = ds.read_chains("SPY", "2021-03-01", "2021-03-31")
    day = t.filter(pc.equal(t["quote_date"], dt.date(2021, 3, 15))).to_pandas()
    spot = day["underlying_price"].iloc[0]
    expirations = sorted(day["expiration"].unique())
    # weekly Fridays near, monthly third Fridays out beyond a year
    assert (expirations[-1] - dt.date(2021, 3, 15)).days > 365
    weeklies = [e for e in expirations if (e - dt.date(2021, 3, 15)).days <= 63]
    # (Fridays; Thursday when the Friday is a holiday: Good Friday 2021-04-02)
    assert len(weeklies) >= 9 and all(e.weekday() == 4 or e == dt.date(2021, 4, 1) for e in weeklies)
    monthlies = [e for e in expirations if (e - dt.date(2021, 3, 15)).days > 63]
    assert all(14 <= e.day <= 21 and e.weekday() in (3, 4) for e in monthlies) and len(monthlies) >= 10
    # strike grid: $1 near the money, wider away from it
    near = day[(day["expiration"] == expirations[3]) & (day["right"] == "C")]["strike"].to_numpy()
    leaps = day[(day["expiration"] == expirations[-1]) & (day["right"] == "P")]["strike"].to_numpy()
    assert set(np.diff(near[np.abs(near / spot - 1) < 0.04])) == {1.0}
    assert np.diff(leaps[np.abs(leaps / spot - 1) < 0.1]).min() >= 5.0  # far expirations: no $1 grid
    assert set(np.diff(leaps[leaps / spot - 1 < -0.2])) == {10.0}
    # quotes on the tick grid, bid >= 0, never crossed; greeks filled; style A; root = symbol
    cents = np.round(np.concatenate([day["bid"], day["ask"]]) * 100)
    assert np.allclose(cents / 100, np.concatenate([day["bid"], day["ask"]]), atol=1e-12)
    assert (day["bid"] >= 0).all() and (day["ask"] > day["bid"]).all()
    live = day[day["expiration"] > dt.date(2021, 3, 15)]
    assert live[["iv", "delta", "gamma", "theta", "vega"]].notna().all().all()
    assert set(day["style"]) == {"A"} and set(day["root"]) == {"SPY"}
    assert day["open_interest"].min() >= 0 and day["volume"].sum() > 0
    # spreads widen with distance from the money
    calls = day[(day["expiration"] == expirations[4]) & (day["right"] == "C")]
    width = (calls["ask"] - calls["bid"]).to_numpy()
    z = np.abs(np.log(calls["strike"] / spot)).to_numpy()
    assert width[z > 0.1].mean() > width[z < 0.02].mean()


def test_listed_strikes_stay_listed_until_expiration(realistic_market):
    t = Dataset(realistic_market).read_chains("SPY", "2020-02-01", "2020-04-30", columns=["quote_date", "expiration", "strike"])
    df = t.to_pandas()
    exp = dt.date(2020, 6, 19)
    per_day = df[df["expiration"] == exp].groupby("quote_date")["strike"].apply(set)
    for before, after in zip(per_day.iloc[:-1], per_day.iloc[1:]):
        assert before <= after  # a crash widens the grid but never removes a strike


def test_vix_and_regime_table(realistic_market):
    ds = Dataset(realistic_market)
    vix = ds.read_index("VIX").to_pandas()
    regimes = ds.read_regimes("SPY").to_pandas()
    assert len(vix) == len(regimes) == 1258
    assert set(regimes["regime"]) == {"calm", "stressed"}
    merged = vix.merge(regimes, on="date")
    by = merged.groupby("regime")["close"].mean()
    assert 12 < by["calm"] < 22 and by["stressed"] > by["calm"] + 5
    assert ds.meta["generator"]["regimes"] == {"SPY": "regimes/underlying=SPY"}


@pytest.fixture(scope="module")
def null_trades(null_market):
    return Market(null_market)


@pytest.fixture(scope="module")
def planted_trades(planted_market):
    return Market(planted_market)


def test_null_mode_is_fair(null_trades, null_market):
    """Held-to-expiry mid P&L of ATM straddles and 16-delta short puts entered every day has
    zero mean: raw, and delta-hedged (same expectation, far less noise, so a sharper test)."""
    straddles = null_trades.straddles()
    puts = null_trades.short_options("P", 0.16)
    assert len(straddles) > 1000 and len(puts) > 1000
    for trades in (straddles, puts):
        for pnl in ("pnl", "hedged_pnl"):
            t = newey_west_t(trades[pnl].to_numpy(), HOLD_LAGS)
            assert abs(t) < T_CRIT, (pnl, t)
    # on a flat surface the variance-swap strip (the VIX formula) returns the volatility itself
    vix = Dataset(null_market).read_index("VIX")["close"].to_numpy()
    assert np.allclose(vix, 100 * MarketModel().null_vol, atol=0.05)
    stats = dataset_stats(str(null_market))["underlyings"]["SPY"]
    assert abs(stats["vrp_vol_points_mean"]) < 1.5  # implied = realized on average
    assert stats["arbitrage_violation_rate"] < 0.001


def test_planted_edge_is_detected_where_planted_only(planted_trades, null_trades):
    """The test that finds the null market fair finds the plant: short 25-delta puts at 30 DTE
    entered in calm regimes earn about 4 vol points of vega; the same puts in the null market,
    planted puts entered in stress, and short calls earn nothing."""
    puts = planted_trades.short_options("P", 0.25)
    calm, stressed = puts[puts["regime"] == "calm"], puts[puts["regime"] == "stressed"]
    assert newey_west_t(calm["hedged_pnl"].to_numpy(), HOLD_LAGS) > 4.0
    configured = (4.0 * calm["vega"]).mean()
    assert 0.6 * configured < calm["hedged_pnl"].mean() < 1.4 * configured
    assert len(stressed) > 30 and abs(newey_west_t(stressed["hedged_pnl"].to_numpy(), HOLD_LAGS)) < T_CRIT
    null_puts = null_trades.short_options("P", 0.25)
    assert abs(newey_west_t(null_puts[null_puts["regime"] == "calm"]["hedged_pnl"].to_numpy(), HOLD_LAGS)) < T_CRIT
    calls = planted_trades.short_options("C", 0.25)
    assert abs(newey_west_t(calls["hedged_pnl"].to_numpy(), HOLD_LAGS)) < T_CRIT


def test_planted_surface_is_null_plus_plant(planted_market, null_market):
    """planted = null + plants exactly: +4 vol points on calm days inside the bands, nothing
    for calls, in stress, or beyond the tapers."""
    cols = ["quote_date", "expiration", "strike", "right", "iv", "delta"]
    p = Dataset(planted_market).read_chains("SPY", "2019-01-01", "2019-12-31", columns=cols).to_pandas()
    n = Dataset(null_market).read_chains("SPY", "2019-01-01", "2019-12-31", columns=cols).to_pandas()
    regimes = Dataset(null_market).read_regimes("SPY").to_pandas().rename(columns={"date": "quote_date"})
    assert len(p) == len(n)
    df = n.assign(bump=(p["iv"] - n["iv"]) * 100).merge(regimes, on="quote_date")
    df["dte"] = (df["expiration"] - df["quote_date"]).map(lambda d: d.days)
    inside = (df["right"] == "P") & df["dte"].between(20, 45) & df["delta"].abs().between(0.15, 0.35)
    assert np.allclose(df.loc[inside & (df["regime"] == "calm"), "bump"], 4.0)
    far = (df["right"] == "C") | (df["regime"] == "stressed") | ~df["dte"].between(20 - 30, 45 + 30) \
        | ~df["delta"].abs().between(0.15 - 0.15, 0.35 + 0.15)  # bands widened by the default tapers
    assert far.mean() > 0.5
    assert np.allclose(df.loc[far, "bump"].fillna(0), 0.0)


def test_same_seed_same_parquet_and_symbols_independent(tmp_path):
    a = synthesize(tmp_path / "a", "SPY,QQQ", "2020-03-02", "2020-04-15", seed=11)
    b = synthesize(tmp_path / "b", "SPY,QQQ", "2020-03-02", "2020-04-15", seed=11)
    c = synthesize(tmp_path / "c", "SPY", "2020-03-02", "2020-04-15", seed=11)
    d = synthesize(tmp_path / "d", "SPY", "2020-03-02", "2020-04-15", seed=12)
    files = sorted(p.relative_to(a) for p in a.rglob("*.parquet"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.parquet")) and len(files) > 6
    import pyarrow.parquet as pq
    for f in files:
        assert pq.read_table(a / f).equals(pq.read_table(b / f)), f
    spy = Dataset(a).read_chains("SPY")
    assert spy.equals(Dataset(c).read_chains("SPY"))  # QQQ beside it changes nothing
    assert not spy.equals(Dataset(d).read_chains("SPY"))
    assert Dataset(a).read_underlying("QQQ").num_rows == Dataset(a).read_underlying("SPY").num_rows
    assert Dataset(a).indices == ["VIX", "VIX_QQQ"]
