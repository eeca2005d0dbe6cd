"""The structure genome's phenotype: 18 structure types and ``StructureDNA`` (DESIGN §4-§5).

``StructureDNA`` is a frozen, hashable value with the field names of seed 000's dataclass, so the
seed's JSON output loads directly. A partial dict is completed with the defaults below; unknown
keys and out-of-range values are reported all at once in one ``DNAError``.

Defaults (and how the backtest reads each gene):

=======================  =========  =========================================================
gene                     default    meaning
=======================  =========  =========================================================
structure_type           required   one of the 18 ``StructureType`` values
front_dte_min/max        7 / 45     calendar-day window of the front (or only) expiration
back_dte_min/max         60 / 90    back-month window (calendars, diagonals); must lie after
                                    the front window (the seed's 45 would overlap it)
long_strike_delta        0.50       |delta| target of the long leg(s)
short_strike_delta       0.30       |delta| target of the short leg(s)
spread_width_strikes     5          wing distance in listed strike steps
entry_regime             None       regimes to trade in (None: all); gates arrive as a mask
min/max_iv_percentile    0 / 100    IV-percentile band (gate built outside the kernel)
profit_target_pct        0.50       exit when P&L >= pct x entry premium (None: off)
stop_loss_pct            1.00       exit when loss >= pct x entry premium (None: off)
dte_exit                 7          exit when front DTE <= this (None: off; 0 = hold to expiry)
delta_breach             None       exit when a short leg's |delta| >= this (None: off)
max_hold_days            None       exit after this many calendar days held (None: off)
max_position_pct         0.05       risk per trade: share of equity put at risk (max loss or
                                    margin) by one entry
max_positions            1          concurrent positions cap
max_total_risk_pct       1.00       cap on the summed risk of open positions, share of equity
=======================  =========  =========================================================
"""
from __future__ import annotations

import dataclasses
import enum
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

from backtest.errors import UserError


class DNAError(UserError):
    """A structure genome that cannot be backtested; the message lists every problem."""


class StructureType(str, enum.Enum):
    LONG_CALL = "long_call"
    LONG_PUT = "long_put"
    SHORT_CALL = "short_call"
    SHORT_PUT = "short_put"
    LONG_STRADDLE = "long_straddle"
    SHORT_STRADDLE = "short_straddle"
    LONG_STRANGLE = "long_strangle"
    SHORT_STRANGLE = "short_strangle"
    CALL_DEBIT_SPREAD = "call_debit_spread"
    CALL_CREDIT_SPREAD = "call_credit_spread"
    PUT_DEBIT_SPREAD = "put_debit_spread"
    PUT_CREDIT_SPREAD = "put_credit_spread"
    IRON_CONDOR = "iron_condor"
    IRON_BUTTERFLY = "iron_butterfly"
    CALENDAR_CALL = "calendar_call"
    CALENDAR_PUT = "calendar_put"
    DIAGONAL_CALL = "diagonal_call"
    DIAGONAL_PUT = "diagonal_put"

    @property
    def code(self) -> int:
        """Stable integer code used by the kernels (declaration order)."""
        return STRUCTURE_CODES[self]

    @classmethod
    def parse(cls, value: Any) -> "StructureType":
        """Accept the value ("iron_condor"), the name ("IRON_CONDOR") or "StructureType.X"."""
        if isinstance(value, cls):
            return value
        text = str(value).strip()
        if text in _BY_VALUE:  # the common case, one lookup (values are the lower-case names)
            return _BY_VALUE[text]
        if text.startswith("StructureType."):
            text = text.split(".", 1)[1]
        for member in cls:
            if text.lower() in (member.value, member.name.lower()):
                return member
        raise DNAError(
            f"structure_type: {value!r} is not a structure type, expected one of "
            + ", ".join(m.value for m in cls)
        )


STRUCTURE_CODES = {t: i for i, t in enumerate(StructureType)}
_BY_VALUE = {t.value: t for t in StructureType}

_CALENDARS = {StructureType.CALENDAR_CALL, StructureType.CALENDAR_PUT}
_DIAGONALS = {StructureType.DIAGONAL_CALL, StructureType.DIAGONAL_PUT}
TWO_EXPIRY_TYPES = frozenset(_CALENDARS | _DIAGONALS)
_WIDTH_TYPES = {
    StructureType.CALL_DEBIT_SPREAD, StructureType.PUT_DEBIT_SPREAD,
    StructureType.CALL_CREDIT_SPREAD, StructureType.PUT_CREDIT_SPREAD,
    StructureType.IRON_CONDOR, StructureType.IRON_BUTTERFLY,
}
_LONG_DELTA_TYPES = {
    StructureType.LONG_CALL, StructureType.LONG_PUT, StructureType.LONG_STRANGLE,
    StructureType.CALL_DEBIT_SPREAD, StructureType.PUT_DEBIT_SPREAD, *_CALENDARS, *_DIAGONALS,
}
_SHORT_DELTA_TYPES = {
    StructureType.SHORT_CALL, StructureType.SHORT_PUT, StructureType.SHORT_STRANGLE,
    StructureType.CALL_CREDIT_SPREAD, StructureType.PUT_CREDIT_SPREAD,
    StructureType.IRON_CONDOR, *_DIAGONALS,
}
# Structures without a short leg: a delta-breach exit has nothing to watch.
_NO_SHORT_LEG = {
    StructureType.LONG_CALL, StructureType.LONG_PUT,
    StructureType.LONG_STRADDLE, StructureType.LONG_STRANGLE,
}
# Naked short options: sized by Reg-T margin instead of a bounded max loss.
UNDEFINED_RISK_TYPES = frozenset({
    StructureType.SHORT_CALL, StructureType.SHORT_PUT,
    StructureType.SHORT_STRADDLE, StructureType.SHORT_STRANGLE,
})

# Inclusive bounds of every numeric gene: (low, high, kind). The search samples inside these;
# validate() reports values outside them; repair() clamps into them.
GENE_BOUNDS: dict[str, tuple[float, float, type]] = {
    "front_dte_min": (1, 730, int),
    "front_dte_max": (1, 730, int),
    "back_dte_min": (2, 1095, int),
    "back_dte_max": (2, 1095, int),
    "long_strike_delta": (0.01, 0.99, float),
    "short_strike_delta": (0.01, 0.99, float),
    "spread_width_strikes": (1, 50, int),
    "min_iv_percentile": (0.0, 100.0, float),
    "max_iv_percentile": (0.0, 100.0, float),
    "profit_target_pct": (0.01, 100.0, float),
    "stop_loss_pct": (0.01, 100.0, float),
    "dte_exit": (0, 729, int),
    "delta_breach": (0.01, 0.99, float),
    "max_hold_days": (1, 1095, int),
    "max_position_pct": (0.0001, 1.0, float),
    "max_positions": (1, 50, int),
    "max_total_risk_pct": (0.0001, 1.0, float),
}
OPTIONAL_GENES = frozenset({"profit_target_pct", "stop_loss_pct", "dte_exit", "delta_breach", "max_hold_days"})

# Keys of the seed's discovered_structures.json entries that are results, not genes.
SEED_RESULT_KEYS = frozenset(
    {"rank", "backtest_sharpe", "backtest_return_pct", "win_rate_pct", "n_trades"}
)


@dataclass(frozen=True)
class StructureDNA:
    structure_type: StructureType
    front_dte_min: int = 7
    front_dte_max: int = 45
    back_dte_min: int = 60
    back_dte_max: int = 90
    long_strike_delta: float = 0.50
    short_strike_delta: float = 0.30
    spread_width_strikes: int = 5
    entry_regime: tuple[int, ...] | None = None
    min_iv_percentile: float = 0.0
    max_iv_percentile: float = 100.0
    profit_target_pct: float | None = 0.50
    stop_loss_pct: float | None = 1.00
    dte_exit: int | None = 7
    delta_breach: float | None = None
    max_hold_days: int | None = None
    max_position_pct: float = 0.05
    max_positions: int = 1
    max_total_risk_pct: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "structure_type", StructureType.parse(self.structure_type))
        if self.entry_regime is not None and not isinstance(self.entry_regime, tuple):
            regimes = self.entry_regime
            if isinstance(regimes, (list, set, frozenset)):
                regimes = tuple(sorted(regimes)) if isinstance(regimes, (set, frozenset)) else tuple(regimes)
            object.__setattr__(self, "entry_regime", regimes)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        # the fields are immutable scalars and a tuple: no deep copy (dataclasses.asdict) needed
        out = {f.name: getattr(self, f.name) for f in _FIELDS}
        out["structure_type"] = self.structure_type.value
        if self.entry_regime is not None:
            out["entry_regime"] = list(self.entry_regime)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], ignore: frozenset[str] = frozenset()) -> "StructureDNA":
        """Build and validate; keys in ``ignore`` (e.g. ``SEED_RESULT_KEYS``) are skipped."""
        if not isinstance(data, Mapping):
            raise DNAError(f"DNA must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        problems = [
            f"unknown key {k!r}" for k in sorted(map(str, data)) if k not in names and k not in ignore
        ]
        values = {k: v for k, v in data.items() if k in names}
        if "structure_type" not in values:
            problems.insert(0, "missing key 'structure_type'")
        else:
            try:
                values["structure_type"] = StructureType.parse(values["structure_type"])
            except DNAError as exc:
                problems.insert(0, str(exc))
        if problems:
            raise DNAError("invalid DNA: " + "; ".join(problems))
        dna = cls(**values)
        check(dna)
        return dna

    @classmethod
    def from_json(cls, text: str, ignore: frozenset[str] = frozenset()) -> "StructureDNA":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DNAError(f"DNA is not valid JSON: {exc}") from None
        return cls.from_dict(data, ignore)


# ---------------------------------------------------------------------- genes by structure type


def relevant_genes(structure_type: StructureType | str) -> frozenset[str]:
    """Genes that change what a structure of this type does; the rest are ignored by the engine."""
    st = StructureType.parse(structure_type)
    genes = {
        "structure_type", "front_dte_min", "front_dte_max", "entry_regime",
        "min_iv_percentile", "max_iv_percentile", "profit_target_pct", "stop_loss_pct",
        "dte_exit", "max_hold_days", "max_position_pct", "max_positions", "max_total_risk_pct",
    }
    if st in TWO_EXPIRY_TYPES:
        genes |= {"back_dte_min", "back_dte_max"}
    if st in _LONG_DELTA_TYPES:
        genes.add("long_strike_delta")
    if st in _SHORT_DELTA_TYPES:
        genes.add("short_strike_delta")
    if st in _WIDTH_TYPES:
        genes.add("spread_width_strikes")
    if st not in _NO_SHORT_LEG:
        genes.add("delta_breach")
    return frozenset(genes)


_FIELDS = dataclasses.fields(StructureDNA)
_DEFAULTS = {f.name: f.default for f in _FIELDS if f.name != "structure_type"}


def canonical(dna: StructureDNA) -> StructureDNA:
    """The same genome with every gene irrelevant to its type set to its default, so that
    genomes that behave identically compare (and hash) equal."""
    keep = relevant_genes(dna.structure_type)
    return dataclasses.replace(dna, **{k: v for k, v in _DEFAULTS.items() if k not in keep})


# ---------------------------------------------------------------------- validation and repair


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


# (gene, low, high, integer gene) in GENE_BOUNDS order
_BOUNDS = tuple((name, low, high, kind is int) for name, (low, high, kind) in GENE_BOUNDS.items())


def validate(dna: StructureDNA) -> list[str]:
    """Every problem with the genome (empty when it can be backtested). Runs for every genome of
    every ``run_many`` call, so the common case (plain numbers in range, no problem) is kept short."""
    problems, bad = [], set()
    for name, low, high, integer in _BOUNDS:
        value = getattr(dna, name)
        kind = type(value)
        if (kind is int or (kind is float and not integer)) and low <= value <= high:
            continue  # NaN and infinities fail the range test and get their message below
        if value is None and name in OPTIONAL_GENES:
            bad.add(name)  # off: no relation to check
            continue
        if integer and not _is_int(value):
            problems.append(f"{name}: {value!r} is not an integer")
        elif not _is_number(value):
            problems.append(f"{name}: {value!r} is not a number")
        elif not low <= value <= high:
            problems.append(f"{name}: {value!r} outside [{low}, {high}]")
        else:
            continue
        bad.add(name)

    def broken(ok: bool, *names: str) -> bool:
        """A relation that fails between genes that are each valid (messages are only formatted
        for these)."""
        return not bad.intersection(names) and not ok

    d = dna
    if broken(d.front_dte_min <= d.front_dte_max, "front_dte_min", "front_dte_max"):
        problems.append(f"front_dte_min ({d.front_dte_min}) > front_dte_max ({d.front_dte_max})")
    if broken(d.back_dte_min <= d.back_dte_max, "back_dte_min", "back_dte_max"):
        problems.append(f"back_dte_min ({d.back_dte_min}) > back_dte_max ({d.back_dte_max})")
    if broken(d.structure_type not in TWO_EXPIRY_TYPES or d.back_dte_min > d.front_dte_max,
              "back_dte_min", "front_dte_max"):
        problems.append(f"back month not after front month: back_dte_min ({d.back_dte_min}) must exceed "
                        f"front_dte_max ({d.front_dte_max}) for {d.structure_type.value}")
    if broken(d.min_iv_percentile <= d.max_iv_percentile, "min_iv_percentile", "max_iv_percentile"):
        problems.append(f"min_iv_percentile ({d.min_iv_percentile}) > max_iv_percentile ({d.max_iv_percentile})")
    if broken(d.dte_exit is None or d.dte_exit < d.front_dte_max, "dte_exit", "front_dte_max"):
        problems.append(f"dte_exit ({d.dte_exit}) must be below front_dte_max ({d.front_dte_max}), "
                        "or every position would exit the day after entry")
    if broken(d.max_position_pct <= d.max_total_risk_pct, "max_position_pct", "max_total_risk_pct"):
        problems.append(f"max_position_pct ({d.max_position_pct}) > max_total_risk_pct ({d.max_total_risk_pct})")
    if dna.entry_regime is not None:
        if not isinstance(dna.entry_regime, tuple) or not all(_is_int(r) for r in dna.entry_regime):
            problems.append(f"entry_regime: {dna.entry_regime!r} must be a list of integers")
        elif not dna.entry_regime:
            problems.append("entry_regime: empty list (use null for all regimes)")
    return problems


def check(dna: StructureDNA) -> StructureDNA:
    """Raise ``DNAError`` listing every problem; return the genome when valid."""
    problems = validate(dna)
    if problems:
        raise DNAError(f"invalid DNA ({dna.structure_type.value}): " + "; ".join(problems))
    return dna


def _clamp(value, name):
    low, high, kind = GENE_BOUNDS[name]
    if value is None or not _is_number(value):
        value = _DEFAULTS[name]
        if value is None:
            return None
    value = min(max(value, low), high)
    return int(round(value)) if kind is int else float(value)


def repair(dna: StructureDNA) -> StructureDNA:
    """A valid genome as close to ``dna`` as the rules allow (deterministic, for the search):
    values clamped into bounds, inverted windows swapped, the back window pushed after the
    front one, dte_exit kept below the front window's end, per-trade risk kept under the total cap."""
    v = {name: _clamp(getattr(dna, name), name) for name in GENE_BOUNDS}
    for lo, hi in (("front_dte_min", "front_dte_max"), ("back_dte_min", "back_dte_max"),
                   ("min_iv_percentile", "max_iv_percentile")):
        if v[lo] > v[hi]:
            v[lo], v[hi] = v[hi], v[lo]
    if dna.structure_type in TWO_EXPIRY_TYPES and v["back_dte_min"] <= v["front_dte_max"]:
        span = v["back_dte_max"] - v["back_dte_min"]
        v["back_dte_min"] = v["front_dte_max"] + 1
        v["back_dte_max"] = min(v["back_dte_min"] + span, GENE_BOUNDS["back_dte_max"][1])
    if v["dte_exit"] is not None and v["dte_exit"] >= v["front_dte_max"]:
        v["dte_exit"] = v["front_dte_max"] - 1
    v["max_position_pct"] = min(v["max_position_pct"], v["max_total_risk_pct"])
    regimes = dna.entry_regime
    if regimes is not None:
        regimes = tuple(sorted({int(r) for r in regimes})) or None
    return dataclasses.replace(dna, entry_regime=regimes, **v)
