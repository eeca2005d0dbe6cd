"""Did a discovery run recover a planted edge? (ground truth from the synthetic generator's plants)"""
from __future__ import annotations

# |delta| gene of the leg a structure SELLS in its front window (None: not set by a gene)
SHORT_LEG_DELTA = {
    "short_call": "short_strike_delta", "short_put": "short_strike_delta", "short_strangle": "short_strike_delta",
    "call_credit_spread": "short_strike_delta", "put_credit_spread": "short_strike_delta",
    "iron_condor": "short_strike_delta", "diagonal_call": "short_strike_delta", "diagonal_put": "short_strike_delta",
    "calendar_call": "long_strike_delta", "calendar_put": "long_strike_delta",  # short front leg at the back leg's strike
    "short_straddle": 0.5, "iron_butterfly": 0.5,
}
# ... and the leg it BUYS in its front window
LONG_LEG_DELTA = {
    "long_call": "long_strike_delta", "long_put": "long_strike_delta", "long_strangle": "long_strike_delta",
    "call_debit_spread": "long_strike_delta", "put_debit_spread": "long_strike_delta", "long_straddle": 0.5,
}


def _dna_name(family: str) -> str:
    """Plant files name two-expiry families right first (put_calendar); StructureDNA names them
    right last (calendar_put)."""
    right, _, kind = family.partition("_")
    return f"{kind}_{right}" if kind in ("calendar", "diagonal") else family


def family_matches(structure_type: str, plant: dict) -> bool:
    """The structure is one of the families the plant favours."""
    return structure_type in {_dna_name(f) for f in plant["favours"]}


def exposed_delta(structure: dict, plant: dict) -> float | None:
    """|delta| of the front-window leg that meets the plant: the leg sold for a rich plant
    (vol_points > 0), the leg bought for a cheap one."""
    table = SHORT_LEG_DELTA if plant["vol_points"] > 0 else LONG_LEG_DELTA
    gene = table.get(structure["structure_type"])
    return gene if gene is None or isinstance(gene, float) else structure[gene]


def match(structure: dict, plant: dict) -> dict:
    """Per-criterion match of a reported structure against one plant: family (the plant's
    ``favours``), DTE band (the front window's midpoint, which the entry rule aims at, inside the
    band widened by its taper), delta band (the exposed leg's |delta|, likewise) and regime (the
    structure trades only in the plant's regimes; reported, not required)."""
    taper_days, taper_delta = plant.get("taper_days", 5.0), plant.get("taper_delta", 0.05)
    mid = (structure["front_dte_min"] + structure["front_dte_max"]) / 2
    delta = exposed_delta(structure, plant)
    regimes = structure.get("entry_regime_names")
    checks = {
        "family": family_matches(structure["structure_type"], plant),
        "dte": plant["dte"][0] - taper_days <= mid <= plant["dte"][1] + taper_days,
        "delta": delta is not None and plant["abs_delta"][0] - taper_delta <= delta <= plant["abs_delta"][1] + taper_delta,
        "regime": regimes is not None and set(regimes) <= set(plant["regimes"]),
    }
    checks["recovered"] = checks["family"] and checks["dte"] and checks["delta"]
    return checks


def recovery(result: dict) -> dict:
    """Whether the top reported structure recovers a plant and passes the thresholds."""
    plants = result["data"].get("plants") or []
    structures = result["discovered_structures"]
    if not plants or not structures:
        return {"recovered": False, "passed": False, "plant": None, "checks": None}
    top = structures[0]
    best = max((match(top, p) | {"plant": p["name"]} for p in plants),
               key=lambda c: (c["recovered"], c["family"] + c["dte"] + c["delta"]))
    return {"recovered": best["recovered"], "passed": top["passed"], "plant": best.pop("plant"), "checks": best}


# --------------------------------------------------------------------------- recovery experiments
# Small markets for recovery runs: three years, expirations listed out to 70 days (so calendars
# and diagonals, which need a back month, are left out of these experiments' search space).
RECOVERY_SPAN = ("2020-01-01", "2022-12-31")
RECOVERY_TYPES = ["long_call", "long_put", "short_call", "short_put", "long_straddle", "short_straddle",
                  "long_strangle", "short_strangle", "call_debit_spread", "call_credit_spread",
                  "put_debit_spread", "put_credit_spread", "iron_condor", "iron_butterfly"]


def small_market(out, seed: int, plants: list[dict] | None):
    """A planted (or, without plants, null) synthetic market small enough for recovery runs."""
    from backtest.synth import parse_plants, synthesize
    from backtest.synth.model import QuoteModel

    plant_models = parse_plants({"plants": plants}) if plants else ()
    return synthesize(out, ["SPY"], *RECOVERY_SPAN, seed, "planted" if plants else "null", plant_models,
                      quotes=QuoteModel(horizon_days=70, weekly_horizon_days=63))


def recovery_config(market, seed: int, population: int = 12, generations: int = 3, offspring: int | None = None,
                    structure_types: list[str] | None = None):
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
                   "seed": seed, "batch_size": 8},
        "walk_forward": {"folds": 3, "lockbox_days": 150},
        "honesty": {"pbo_candidates": 8, "pbo_blocks": 8, "top_n": 4, "min_lockbox_trades": 2},
    }, "recovery")
