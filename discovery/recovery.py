"""Did a discovery run recover a planted edge? (ground truth from the synthetic generator's plants)"""
from __future__ import annotations

import numpy as np
import pandas as pd

# A leg sits in a plant's slice where the plant's mispricing there is at least this share of its
# full size (the plant tapers linearly outside its DTE and |delta| bands).
IN_BAND_WEIGHT = 0.5


def _dna_name(family: str) -> str:
    """Plant files name two-expiry families right first (put_calendar); StructureDNA names them
    right last (calendar_put)."""
    right, _, kind = family.partition("_")
    return f"{kind}_{right}" if kind in ("calendar", "diagonal") else family


def family_matches(structure_type: str, plant: dict) -> bool:
    """The structure is one of the families the plant file names as favoured."""
    return structure_type in {_dna_name(f) for f in plant["favours"]}


def entry_legs(trades: pd.DataFrame) -> pd.DataFrame:
    """One row per leg of each trade as entered: trade_id, leg (position 1-4), quote_date,
    expiration, strike, right, qty (+1 bought, -1 sold per unit of the structure)."""
    parts = []
    for i in range(1, 5):
        held = trades[trades[f"leg{i}_qty"] != 0]
        parts.append(pd.DataFrame({
            "trade_id": held["trade_id"].to_numpy(), "leg": i,
            "quote_date": pd.to_datetime(held["entry_date"]).to_numpy(),
            "expiration": pd.to_datetime(held[f"leg{i}_expiration"]).to_numpy(),
            "strike": held[f"leg{i}_strike"].to_numpy(), "right": held[f"leg{i}_right"].to_numpy(),
            "qty": held[f"leg{i}_qty"].to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def planted_exposure(legs: pd.DataFrame, dataset, underlying: str, plant) -> pd.DataFrame:
    """Each entered leg with its quote (|delta|, vega, DTE, regime) and what the plant does to it:
    ``band_weight`` (share of the plant's full size at the leg's DTE and |delta|, ignoring the
    regime) and ``edge`` (-qty x vega x the vol bump on that day: positive where the leg takes
    the plant's side, selling a rich option or buying a cheap one).

    The bump is the generator's own (``synth_nb.plant_bump``), evaluated at the quote's |delta|
    (the generator uses the unplanted delta: a few vol points move it by a little)."""
    from backtest.synth.generator import plant_matrix
    from backtest.synth.model import REGIME_NAMES
    from backtest.synth.synth_nb import plant_bump

    if legs.empty:
        return legs.assign(abs_delta=[], vega=[], dte=[], band_weight=[], edge=[])
    chain = dataset.read_chains(underlying, legs["quote_date"].min().date(), legs["quote_date"].max().date(),
                                columns=["quote_date", "expiration", "strike", "right", "delta", "vega"]).to_pandas()
    for col in ("quote_date", "expiration"):
        chain[col] = pd.to_datetime(chain[col])
    quoted = legs.merge(chain, on=["quote_date", "expiration", "strike", "right"], how="left")
    regimes = dataset.read_regimes(underlying).to_pandas()
    regime_of = dict(zip(pd.to_datetime(regimes["date"]), regimes["regime"]))
    rows = plant_matrix([plant])
    any_planted_regime = REGIME_NAMES.index(plant.regimes[0])
    full = plant.vol_points / 100.0
    band, bump = [], []
    for r in quoted.itertuples():
        is_call, dte, abs_delta = r.right == "C", (r.expiration - r.quote_date).days, abs(r.delta)
        band.append(plant_bump(is_call, dte, abs_delta, any_planted_regime, rows) / full)
        bump.append(plant_bump(is_call, dte, abs_delta, REGIME_NAMES.index(regime_of[r.quote_date]), rows))
    return quoted.assign(abs_delta=quoted["delta"].abs(), dte=(quoted["expiration"] - quoted["quote_date"]).dt.days,
                         band_weight=band, edge=-quoted["qty"] * quoted["vega"] * np.array(bump))


def exposure_match(exposure: pd.DataFrame, plant) -> dict:
    """Does a structure, as it actually traded, harvest the plant? ``harvests``: its legs' net
    planted edge summed over its trades is positive (it sells the rich slice or buys the cheap
    one, net of any leg on the wrong side); ``in_band``: the leg position collecting most of
    that edge (the exposed leg: the sold wing of a debit spread, the short put of a condor)
    sits in the plant's slice (band weight >= IN_BAND_WEIGHT) in at least half the trades."""
    if exposure.empty or exposure["vega"].isna().any():
        return {"harvests": False, "in_band": False, "exposed_leg": None, "exposed_dte": None,
                "exposed_abs_delta": None, "planted_edge": 0.0}
    by_leg = exposure.groupby("leg")["edge"].sum()
    leg = int(by_leg.idxmax())
    exposed = exposure[exposure["leg"] == leg]
    return {
        "harvests": bool(by_leg.sum() > 0),
        "in_band": bool((exposed["band_weight"] >= IN_BAND_WEIGHT).mean() >= 0.5),
        "exposed_leg": leg,
        "exposed_dte": float(exposed["dte"].median()),
        "exposed_abs_delta": round(float(exposed["abs_delta"].median()), 3),
        "planted_edge": round(float(by_leg.sum()), 4),
    }


def match(structure: dict, trades: pd.DataFrame, dataset, underlying: str, plant: dict) -> dict:
    """Per-criterion match of a reported structure against one plant, from its lockbox trade log:
    ``family`` (it harvests the plant's exposure and the exposed leg sits in the plant's DTE and
    |delta| bands; see ``exposure_match``), ``favoured_type`` (its structure type is one the plant
    file names; reported, not required: a debit spread harvests a rich slice through its sold
    wing), and ``regime`` (its regime gene trades only in the plant's regimes)."""
    from backtest.synth.plants import parse_plants

    model = parse_plants({"plants": [plant]})[0]
    exposure = exposure_match(planted_exposure(entry_legs(trades), dataset, underlying, model), model)
    regimes = structure.get("entry_regime_names")
    return {
        **exposure,
        "favoured_type": family_matches(structure["structure_type"], plant),
        "regime": regimes is not None and set(regimes) <= set(plant["regimes"]),
        "recovered": exposure["harvests"] and exposure["in_band"],
    }


def recovery(result: dict, config, top_trades: pd.DataFrame | None = None) -> dict:
    """Whether the top reported structure recovers a plant (``match`` on its lockbox trades:
    ``top_trades`` where the caller kept them from the run, else re-run with the run's
    ``config``) and passes the thresholds."""
    from pathlib import Path

    from backtest.store import Dataset
    from discovery.evaluate import lockbox_backtest
    from discovery.run import dna_of, make_context

    plants = result["data"].get("plants") or []
    structures = result["discovered_structures"]
    if not plants or not structures:
        return {"recovered": False, "passed": False, "plant": None, "checks": None}
    top = structures[0]
    path = Path(result["data"]["path"])
    trades = top_trades if top_trades is not None else lockbox_backtest(make_context(config, path), dna_of(top))[0].trades
    dataset = Dataset(path)
    best = max((match(top, trades, dataset, result["symbol"], p) | {"plant": p["name"]} for p in plants),
               key=lambda c: (c["recovered"], c["harvests"], c["planted_edge"]))
    return {"recovered": best["recovered"], "passed": top["passed"], "plant": best.pop("plant"), "checks": best}


# --------------------------------------------------------------------------- recovery experiments
# Small markets for recovery runs: a few years ending 2022-12-31, expirations listed out to 70
# days (so calendars and diagonals, which need a back month, are left out of these experiments'
# search space).
RECOVERY_END_YEAR = 2022
RECOVERY_TYPES = ["long_call", "long_put", "short_call", "short_put", "long_straddle", "short_straddle",
                  "long_strangle", "short_strangle", "call_debit_spread", "call_credit_spread",
                  "put_debit_spread", "put_credit_spread", "iron_condor", "iron_butterfly"]


def small_market(out, seed: int, plants: list[dict] | None, years: int = 3, model=None):
    """A planted (or, without plants, null) synthetic market of ``years`` years, small enough for
    recovery runs; ``model`` (a ``MarketModel``) changes the market's dynamics."""
    from backtest.synth import MarketModel, parse_plants, synthesize
    from backtest.synth.model import QuoteModel

    plant_models = parse_plants({"plants": plants}) if plants else ()
    span = (f"{RECOVERY_END_YEAR - years + 1}-01-01", f"{RECOVERY_END_YEAR}-12-31")
    return synthesize(out, ["SPY"], *span, seed, "planted" if plants else "null", plant_models,
                      model=model or MarketModel(), quotes=QuoteModel(horizon_days=70, weekly_horizon_days=63))


def recovery_config(market, seed: int, population: int = 12, generations: int = 3, offspring: int | None = None,
                    structure_types: list[str] | None = None, refine_regimes: int | None = None):
    """The run config of a recovery experiment on ``small_market`` data."""
    from discovery.config import parse_config

    return parse_config({
        "name": "recovery",
        "data": {"path": str(market)},
        "space": {"structure_types": structure_types or RECOVERY_TYPES,
                  "genes": {"front_dte_min": [7, 30], "front_dte_max": [14, 45], "dte_exit": [0, 5]},
                  # 20% of equity at risk per entry: enough for one naked SPY option's Reg-T margin
                  # (about 15-20% of a $300 underlying x 100), so undefined-risk structures can trade
                  "fixed": {"max_position_pct": 0.2}},
        "search": {"population": population, "generations": generations, "lambda": offspring or population,
                   "seed": seed, "batch_size": 8,
                   **({} if refine_regimes is None else {"refine_regimes": refine_regimes})},
        "walk_forward": {"folds": 3, "lockbox_days": 150},
        "honesty": {"pbo_candidates": 8, "pbo_blocks": 8, "top_n": 4, "min_lockbox_trades": 2},
    }, "recovery")
