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
