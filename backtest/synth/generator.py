"""Streaming generation of a synthetic market into the canonical store (see package docstring)."""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict
from functools import lru_cache
from itertools import groupby
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa

from backtest.calendar import listed_expirations, trading_days
from backtest.errors import UserError
from backtest.store import DatasetWriter, date_to_days, to_date
from backtest.synth import synth_nb
from backtest.synth.model import (
    CALM,
    REGIME_NAMES,
    MarketModel,
    QuoteModel,
    SymbolProfile,
    profile_for,
    steps_for,
    symbol_key,
)
from backtest.synth.plants import Plant

MODES = ("realistic", "null", "planted")

# The listing depends only on the day: symbols and repeated runs share it.
_listed_expirations = lru_cache(maxsize=16384)(listed_expirations)
GENERATOR_VERSION = 1
BURN_IN_DAYS = 252
_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.]{0,9}$")


def index_name(symbol: str) -> str:
    """Name of the VIX-like index of `symbol` in DATASET/indices/ (``VIX`` for SPY)."""
    return "VIX" if symbol == "SPY" else f"VIX_{symbol}"


def parse_symbols(symbols: str | Sequence[str]) -> list[str]:
    """``"SPY,QQQ"`` or a list -> validated, de-duplicated-checked upper-case tickers."""
    items = symbols.split(",") if isinstance(symbols, str) else list(symbols)
    items = [s.strip() for s in items]
    if not items or any(not s for s in items):
        raise UserError(f"--symbols: {symbols!r} is not a comma-separated list of tickers (e.g. SPY,QQQ)")
    for s in items:
        if not _SYMBOL.match(s):
            raise UserError(f"--symbols: {s!r} is not a ticker (expected upper-case letters/digits, e.g. SPY)")
    dup = sorted({s for s in items if items.count(s) > 1})
    if dup:
        raise UserError(f"--symbols: {', '.join(dup)} listed more than once")
    return items


class SymbolMarket:
    """One underlying's market: its whole daily path up front (small), chains month by month."""

    def __init__(self, symbol: str, days: list[dt.date], seed: int, mode: str,
                 plants: Sequence[Plant], model: MarketModel, quotes: QuoteModel):
        self.symbol, self.days, self.mode = symbol, days, mode
        self.model, self.quotes = model, quotes
        self.profile: SymbolProfile = profile_for(symbol)
        self.realistic = mode == "realistic"
        streams = np.random.SeedSequence(entropy=seed, spawn_key=(symbol_key(symbol),)).spawn(3)
        self._path_rng, self._bar_rng, self._quote_rng = (np.random.default_rng(s) for s in streams)
        self.steps = steps_for(self.profile.spot, quotes)
        self.plants = plant_matrix([p for p in plants if p.applies_to(symbol)])
        self._simulate()
        self._hulls: dict[dt.date, np.ndarray] = {}
        self._ratios = np.round(self.steps[::-1] / self.steps[0]).astype(np.int64)

    # ------------------------------------------------------------------ daily path
    def _simulate(self) -> None:
        m, p = self.model, self.profile
        scale2 = p.vol_scale**2
        n = len(self.days)
        ords = np.array([d.toordinal() for d in self.days])
        gaps = np.diff(ords, prepend=ords[0] - 1) / synth_nb.YEAR_DAYS
        dt_all = np.concatenate([np.full(BURN_IN_DAYS, 1.0 / 252.0), gaps])
        z = self._path_rng.standard_normal((len(dt_all), 3))
        u = self._path_rng.random((len(dt_all), 3))
        var_level = np.array(m.variance_level) * scale2
        null_var = (m.null_vol * p.vol_scale) ** 2
        jump_mean = np.array(m.jump_mean) * p.vol_scale
        jump_sd = np.array(m.jump_sd) * p.vol_scale
        jump_intensity = np.array(m.jump_intensity)
        log_ret, regime, variance, _ = synth_nb.simulate_path(
            dt_all, z, u, self.realistic, CALM, var_level[CALM], p.rate, p.div_yield,
            np.array([m.p_calm_to_stressed, m.p_stressed_to_calm]), var_level,
            np.array(m.variance_reversion), np.array(m.vol_of_vol), m.spot_vol_correlation,
            np.array(m.stress_entry_variance_jump), np.array(m.excess_drift),
            jump_intensity, jump_mean, jump_sd, m.jump_variance_kick * scale2, null_var,
        )
        log_ret, self.regime, variance = log_ret[BURN_IN_DAYS:], regime[BURN_IN_DAYS:], variance[BURN_IN_DAYS:]
        self.close = p.spot * np.exp(np.cumsum(log_ret) - log_ret[0])
        if self.realistic:
            # total instantaneous variance includes the regime's expected jump variance
            jump_var = jump_intensity * (jump_mean**2 + jump_sd**2)
            self.spot_variance = variance + jump_var[self.regime]
            calm_vol = np.sqrt(var_level[CALM] + jump_var[CALM])
            self.long_run = np.full(n, m.implied_long_run_variance * scale2)
            self.premium = p.vol_scale * m.vrp_base + m.vrp_stress_share * np.maximum(
                np.sqrt(self.spot_variance) - calm_vol, 0.0)
            self.ssvi = (m.ssvi_rho, m.ssvi_eta, m.ssvi_gamma)
        else:
            self.spot_variance = np.full(n, null_var)
            self.long_run = self.spot_variance
            self.premium = np.zeros(n)
            self.ssvi = (0.0, 0.0, m.ssvi_gamma)  # flat: BSM at the true constant vol

    def bars(self) -> pa.Table:
        """Daily OHLCV: the open gaps from the prior close, high/low bracket open and close."""
        rng, n = self._bar_rng, len(self.days)
        day_vol = np.sqrt(self.spot_variance / 252.0)
        prev = np.concatenate([[self.close[0]], self.close[:-1]])
        open_ = prev * np.exp(0.3 * day_vol * rng.standard_normal(n))
        open_[0] = self.close[0]
        hi = np.maximum(open_, self.close) * np.exp(0.5 * day_vol * np.abs(rng.standard_normal(n)))
        lo = np.minimum(open_, self.close) * np.exp(-0.5 * day_vol * np.abs(rng.standard_normal(n)))
        vol_ratio = np.sqrt(self.spot_variance) / np.sqrt(self.spot_variance.min())
        volume = (self.profile.bar_volume * vol_ratio * rng.lognormal(0.0, 0.3, n)).astype(np.int64)
        return pa.table({
            "date": pa.array(self.days, pa.date32()), "open": np.round(open_, 2), "high": np.round(hi, 2),
            "low": np.round(lo, 2), "close": np.round(self.close, 2), "volume": volume,
        })

    def regimes(self) -> pa.Table:
        names = np.array(REGIME_NAMES)[self.regime]
        return pa.table({"date": pa.array(self.days, pa.date32()), "regime": pa.array(names, pa.string())})

    def volatility_index(self) -> pa.Table:
        """VIX-like: 100 x the 30-day variance-swap vol of the (unplanted) surface, closes only."""
        rho, eta, gamma = self.ssvi
        vs = synth_nb.variance_swap_vol(30.0 / synth_nb.YEAR_DAYS, self.spot_variance, self.long_run,
                                        self.premium, self.model.implied_reversion, rho, eta, gamma)
        return pa.table({"date": pa.array(self.days, pa.date32()), "close": np.round(100.0 * vs, 2)})

    # ------------------------------------------------------------------ chains
    def months(self) -> Iterable[tuple[str, list[int]]]:
        for (y, m), idx in groupby(range(len(self.days)), key=lambda i: (self.days[i].year, self.days[i].month)):
            yield f"{y:04d}-{m:02d}", list(idx)

    def _listing_windows(self, spot: np.ndarray, atm_vol: np.ndarray, dte: np.ndarray):
        """Today's strike windows per (day, expiration) pair and band (coarse, medium, fine),
        in units of the finest step: a range of standard deviations around spot, the finer
        steps only near the money (and the finest only up to fine_max_dte)."""
        q, unit = self.quotes, self.steps[0]
        sd = atm_vol * np.sqrt(np.maximum(dte, 1) / synth_nb.YEAR_DAYS)
        lo = spot * np.exp(-np.clip(q.range_sd_put * sd, q.range_min, q.range_max_put))
        hi = spot * np.exp(np.clip(q.range_sd_call * sd, q.range_min, q.range_max_call))
        med_lo, med_hi = np.maximum(lo, spot * (1 - q.medium_band)), np.minimum(hi, spot * (1 + q.medium_band))
        fine_lo, fine_hi = np.maximum(lo, spot * (1 - q.fine_band)), np.minimum(hi, spot * (1 + q.fine_band))
        fine_hi = np.where(dte <= q.fine_max_dte, fine_hi, 0.0)
        window_lo = np.ceil(np.stack([lo, med_lo, fine_lo], axis=1) / unit - 1e-9).astype(np.int64)
        window_hi = np.floor(np.stack([hi, med_hi, fine_hi], axis=1) / unit + 1e-9).astype(np.int64)
        return window_lo, window_hi

    def chain_month(self, day_idx: list[int]) -> pa.Table:
        """Every listed contract of the month's days, priced and quoted, in the store's order."""
        q, p = self.quotes, self.profile
        pair_day, pair_exp = [], []
        for i in day_idx:
            for e in _listed_expirations(self.days[i], q.weekly_horizon_days, q.horizon_days):
                pair_day.append(i)
                pair_exp.append(e)
        pair_day = np.array(pair_day)
        exp_dates = sorted(set(pair_exp))
        exp_slot = {e: j for j, e in enumerate(exp_dates)}
        pair_slot = np.array([exp_slot[e] for e in pair_exp])
        pair_exp_days = np.array([date_to_days(e) for e in exp_dates], np.int32)[pair_slot]
        today_days = np.array([date_to_days(d) for d in self.days[day_idx[0]:day_idx[-1] + 1]], np.int32)
        pair_dte = pair_exp_days - today_days[pair_day - day_idx[0]]
        atm_vol = np.sqrt(self.spot_variance[pair_day]) + self.premium[pair_day]
        window_lo, window_hi = self._listing_windows(self.close[pair_day], atm_vol, pair_dte)
        # listing state of each expiration across months (a listed strike stays listed)
        empty = np.array([[np.iinfo(np.int64).max] * 3, [np.iinfo(np.int64).min] * 3])
        hulls = np.stack([self._hulls.get(e, empty) for e in exp_dates])
        hull_lo, hull_hi = hulls[:, 0].copy(), hulls[:, 1].copy()
        units, is_call, pair_of_row = synth_nb.list_strikes(
            pair_slot, window_lo, window_hi, hull_lo, hull_hi, self._ratios)
        last_day = self.days[day_idx[-1]]
        self._hulls = {e: np.stack([hull_lo[j], hull_hi[j]]) for j, e in enumerate(exp_dates) if e > last_day}
        strike = np.round(units * self.steps[0], 6)
        day = pair_day[pair_of_row]
        dte = pair_dte[pair_of_row]
        expiration = pair_exp_days[pair_of_row]
        n = len(strike)
        out = {name: np.empty(n) for name in ("iv", "theo", "bid", "ask", "delta", "gamma", "theta", "vega", "z")}
        rho, eta, gamma = self.ssvi
        synth_nb.quote_chain(
            pair_of_row, strike, is_call, pair_day, pair_dte, self.close, self.spot_variance, self.long_run, self.premium,
            self.regime, p.rate, p.div_yield, self.model.implied_reversion, rho, eta, gamma, True,
            self.plants, q.tick, q.width_abs, q.width_rel,
            out["iv"], out["theo"], out["bid"], out["ask"], out["delta"], out["gamma"], out["theta"],
            out["vega"], out["z"],
        )
        # open interest: highest near the money and at ~30 DTE, lognormal noise; volume: an
        # exponentially distributed share of it (mean 8%), higher when volatility is high
        rng = self._quote_rng
        pair_liquidity = p.open_interest * (30.0 / np.maximum(pair_dte, 5)) ** 0.3
        pair_turnover = 0.08 * np.sqrt(self.spot_variance[pair_day] / self.spot_variance.min())
        noise = np.exp(0.6 * rng.standard_normal(n) - 0.25 * out["z"] ** 2)
        open_interest = (pair_liquidity[pair_of_row] * noise).astype(np.int64)
        volume = (open_interest * pair_turnover[pair_of_row] * rng.standard_exponential(n)).astype(np.int64)
        mid = 0.5 * (out["bid"] + out["ask"])
        return pa.table({
            "quote_date": pa.array(today_days[day - day_idx[0]]).cast(pa.date32()),
            "underlying": _repeated_string(self.symbol, n, dictionary=True),
            "root": _repeated_string(self.symbol, n, dictionary=True),
            "expiration": pa.array(expiration).cast(pa.date32()),
            "strike": strike,
            "right": pa.DictionaryArray.from_arrays(pa.array((~is_call).astype(np.int8)), pa.array(["C", "P"])).cast(pa.string()),
            "style": _repeated_string("A", n, dictionary=False),
            "bid": out["bid"], "ask": out["ask"],
            "last": _nullable(np.round(mid, 2), volume == 0),
            "volume": volume.astype(np.int64), "open_interest": open_interest,
            "iv": _nullable(out["iv"], np.isnan(out["iv"])), "delta": out["delta"], "gamma": out["gamma"], "theta": out["theta"],
            "vega": out["vega"], "underlying_price": np.round(self.close[day], 2),
        })


def _nullable(values: np.ndarray, null: np.ndarray) -> pa.Array:
    """float64 Arrow array with nulls where `null` (pa.array(mask=...) is ~100x slower)."""
    validity = np.packbits(~null, bitorder="little")
    return pa.Array.from_buffers(pa.float64(), len(values), [pa.py_buffer(validity), pa.py_buffer(values)],
                                 null_count=int(null.sum()))


def _repeated_string(value: str, n: int, *, dictionary: bool) -> pa.Array:
    arr = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([value]))
    return arr if dictionary else arr.cast(pa.string())


def plant_matrix(plants: Sequence[Plant]) -> np.ndarray:
    """The plants as the rows ``synth_nb.plant_bump`` reads (also used to measure a structure's exposure)."""
    rows = [[p.right == "C", *p.dte, *p.abs_delta, sum(1 << REGIME_NAMES.index(r) for r in p.regimes),
             p.vol_points, p.taper_delta, p.taper_days] for p in plants]
    return np.array(rows, np.float64).reshape(len(rows), 9)


def generator_params(symbols, start, end, seed, mode, plants, model, quotes) -> dict:
    """What dataset.json records under ``generator`` (equal params -> identical data)."""
    return {
        "name": "backtest.synth", "version": GENERATOR_VERSION, "mode": mode, "seed": seed,
        "symbols": list(symbols), "start": start.isoformat(), "end": end.isoformat(),
        "plants": [p.model_dump(mode="json") for p in plants],
        "model": asdict(model), "quotes": asdict(quotes),
        "profiles": {s: asdict(profile_for(s)) for s in symbols},
        "indices": {s: index_name(s) for s in symbols},
        "regimes": {s: f"regimes/underlying={s}" for s in symbols},
        "regime_names": list(REGIME_NAMES),
        "style": "A: American exercise, physically settled (equity/ETF options); quotes are European "
                 "BSM values floored at intrinsic value",
    }


def requested_params(symbols, start, end, seed, mode, plants=(), model=MarketModel(), quotes=QuoteModel()) -> dict:
    """The ``generator`` entry dataset.json would hold for these arguments (JSON-normalised),
    so a caller can tell whether an existing dataset already is the market it wants."""
    days = trading_days(to_date(start, "--start"), to_date(end, "--end"))
    params = generator_params(parse_symbols(symbols), days[0], days[-1], int(seed), mode, tuple(plants), model, quotes)
    return json.loads(json.dumps(params))


def synthesize(
    out: str | Path,
    symbols: str | Sequence[str] = ("SPY",),
    start: str | dt.date = "2019-01-01",
    end: str | dt.date = "2023-12-31",
    seed: int = 0,
    mode: str = "realistic",
    plants: Sequence[Plant] = (),
    *,
    overwrite: bool = False,
    progress: bool = False,
    model: MarketModel = MarketModel(),
    quotes: QuoteModel = QuoteModel(),
) -> Path:
    """Generate a synthetic market into the dataset directory `out` and return its path.

    Streams month by month through :class:`backtest.store.DatasetWriter` (atomic; an existing
    non-empty `out` is refused unless `overwrite`). Raises UserError for any bad argument
    before anything is written.
    """
    from tqdm import tqdm

    symbols = parse_symbols(symbols)
    start_d, end_d = to_date(start, "--start"), to_date(end, "--end")
    if start_d > end_d:
        raise UserError(f"--start {start_d} is after --end {end_d}")
    if mode not in MODES:
        raise UserError(f"--mode: unknown mode {mode!r} (expected one of {', '.join(MODES)})")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise UserError(f"--seed: {seed!r} is not a non-negative integer")
    plants = tuple(plants)
    if mode == "planted" and not plants:
        raise UserError("--mode planted needs --plant FILE (the mispricings to plant)")
    if mode == "null" and plants:
        raise UserError("--plant cannot be used with --mode null (use --mode planted: null plus plants)")
    if Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out: {out} is a file, expected a dataset directory")
    days = trading_days(start_d, end_d)
    if not days:
        raise UserError(f"no trading days between {start_d} and {end_d}")
    params = generator_params(symbols, days[0], days[-1], int(seed), mode, plants, model, quotes)
    # snappy: chain files ~25% larger than zstd but written ~1.5x faster (BENCHMARKS.md)
    with DatasetWriter(out, overwrite=overwrite, compression="snappy") as writer:
        writer.meta["generator"] = params
        writer.add_source({"type": "synthetic", "mode": mode, "seed": int(seed),
                           "plants": ",".join(p.name for p in plants) or "none"})
        markets = [SymbolMarket(s, days, int(seed), mode, plants, model, quotes) for s in symbols]
        n_months = sum(1 for _ in markets[0].months())
        with tqdm(total=n_months * len(symbols), unit="month", desc="synth", disable=not progress) as bar:
            for market in markets:
                bar.set_postfix_str(market.symbol)
                writer.write_underlying(market.symbol, market.bars())
                writer.write_regimes(market.symbol, market.regimes())
                writer.write_index(index_name(market.symbol), market.volatility_index())
                for part, idx in market.months():
                    writer.write_chains(market.symbol, market.chain_month(idx), part=part)
                    bar.update()
    return Path(out)
