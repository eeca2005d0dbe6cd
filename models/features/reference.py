"""A straightforward pandas implementation of the raw options aggregates (``options_nb``).

It exists for two reasons: the tests check the numba kernel against it (an independent code
path: pandas groupby and ``np.interp`` instead of hand-written loops), and the benchmark uses it
as the same-run baseline. It is slow by design; do not use it to build features.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.store import ChainArrays
from models.features.options_nb import CONTRACT_MULTIPLIER, RAW_COLUMNS, YEAR_DAYS


def chain_frame(chain: ChainArrays) -> pd.DataFrame:
    df = pd.DataFrame({c: getattr(chain, c) for c in (
        "quote_date", "expiration", "strike", "is_call", "iv", "delta", "gamma", "theta", "vega",
        "underlying_price")})
    df["volume"] = pd.Series(chain.volume, dtype=float).where(chain.volume >= 0)
    df["open_interest"] = pd.Series(chain.open_interest, dtype=float).where(chain.open_interest >= 0)
    return df


def _term_iv(ts: np.ndarray, ivs: np.ndarray, target: float) -> float:
    ok = ivs > 0
    ts, ivs = ts[ok], ivs[ok]
    if not len(ts):
        return np.nan
    if target <= ts[0]:
        return ivs[0]
    if target >= ts[-1]:
        return ivs[-1]
    w = np.interp(target, ts, ivs ** 2 * ts)
    return np.sqrt(w / target) if w > 0 else np.nan


def _smile(side: pd.DataFrame, spot: float) -> tuple[float, float]:
    ok = side[side["iv"] > 0]
    atm = np.nan
    if len(ok) and ok["strike"].iloc[0] <= spot <= ok["strike"].iloc[-1]:
        atm = float(np.interp(spot, ok["strike"], ok["iv"]))
    wing = ok.dropna(subset=["delta"])
    d = wing["delta"].abs().to_numpy()
    order = np.argsort(d)
    wing_iv = np.nan
    if len(d) and d[order[0]] <= 0.25 <= d[order[-1]]:
        wing_iv = float(np.interp(0.25, d[order], wing["iv"].to_numpy()[order]))
    return atm, wing_iv


def _day(day: pd.DataFrame) -> pd.Series:
    out = dict.fromkeys(RAW_COLUMNS, np.nan)
    spot = day["underlying_price"].iloc[0]
    out["spot"] = spot
    calls, puts = day[day["is_call"]], day[~day["is_call"]]
    if day["open_interest"].notna().any():
        out["call_oi"], out["put_oi"] = calls["open_interest"].sum(), puts["open_interest"].sum()
    if day["volume"].notna().any():
        out["call_volume"], out["put_volume"] = calls["volume"].sum(), puts["volume"].sum()
    signed = day.assign(gamma=day["gamma"].where(day["is_call"], -day["gamma"]))
    for greek in ("delta", "gamma", "vega", "theta"):
        g = signed.dropna(subset=["open_interest", greek])
        if g["open_interest"].sum() > 0:
            out[f"net_{greek}"] = np.average(g[greek], weights=g["open_interest"])
    gx = day.dropna(subset=["open_interest", "gamma"])
    if len(gx):
        sign = np.where(gx["is_call"], 1.0, -1.0)
        gex = (sign * gx["gamma"] * gx["open_interest"] * CONTRACT_MULTIPLIER * spot ** 2 * 0.01)
        by_strike = gex.groupby(gx["strike"]).sum()
        out["gex_total"] = by_strike.sum()
        out["max_gamma_strike"] = by_strike.abs().idxmax()
        out["gamma_concentration"] = by_strike.abs().max() / by_strike.abs().sum()
        nz = by_strike[by_strike != 0]
        k, v = nz.index.to_numpy(), nz.to_numpy()
        flips = [k[i] + v[i] / (v[i] - v[i + 1]) * (k[i + 1] - k[i]) for i in range(len(v) - 1) if (v[i] > 0) != (v[i + 1] > 0)]
        if flips:
            out["gamma_flip_strike"] = min(flips, key=lambda x: abs(x - spot))
    rows = []
    for exp, e in day.groupby("expiration", sort=True):
        dte = exp - day["quote_date"].iloc[0]
        if dte < 1:
            continue
        c_atm, c25 = _smile(e[e["is_call"]], spot)
        p_atm, p25 = _smile(e[~e["is_call"]], spot)
        atm = np.nanmean([c_atm, p_atm]) if not (np.isnan(c_atm) and np.isnan(p_atm)) else np.nan
        oi = e["open_interest"].sum() if day["open_interest"].notna().any() else np.nan
        rows.append((dte / YEAR_DAYS, c_atm, p_atm, atm, c25, p25, oi))
    if rows:
        t = pd.DataFrame(rows, columns=["t", "c_atm", "p_atm", "atm", "c25", "p25", "oi"])
        ts = t["t"].to_numpy()
        for col, src, target in [("atm_iv_30d", "atm", 30), ("atm_call_iv_30d", "c_atm", 30),
                                 ("atm_put_iv_30d", "p_atm", 30), ("call25_iv_30d", "c25", 30),
                                 ("put25_iv_30d", "p25", 30), ("atm_iv_90d", "atm", 90)]:
            out[col] = _term_iv(ts, t[src].to_numpy(), target / YEAR_DAYS)
        out["front_month_oi"], out["atm_iv_front"] = t["oi"].iloc[0], t["atm"].iloc[0]
        if len(t) > 1:
            out["next_month_oi"], out["atm_iv_next"] = t["oi"].iloc[1], t["atm"].iloc[1]
    return pd.Series(out)


def daily_raw_pandas(chain: ChainArrays) -> pd.DataFrame:
    """Same output as :func:`models.features.options.daily_raw`, computed with pandas groupby."""
    df = chain_frame(chain)
    raw = df.groupby(df["quote_date"].rename("day"), sort=True).apply(_day)
    raw.index = pd.DatetimeIndex(raw.index.to_numpy().astype("datetime64[D]"), name="date")
    return raw[list(RAW_COLUMNS)]
