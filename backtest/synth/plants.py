"""Planted mispricings: the ``--plant`` YAML file and its validation.

A plant makes a known slice of the option surface rich (``vol_points > 0``) or cheap
(``vol_points < 0``) by that many implied-volatility points, on the days whose regime is listed.
Slices are chosen by right, calendar DTE band and |delta| band (delta of the unplanted quote).
The bump tapers linearly to zero over ``taper_delta`` / ``taper_days`` outside the bands, so
the surface stays smooth across strikes and expirations (a hard edge would be a butterfly or
calendar arbitrage by itself); inside the bands it is exactly ``vol_points``. A plant remains a
relative mispricing: some static-arbitrage violations against unplanted neighbours remain
(measured by ``osd data stats``; see the README).

File format (see ``configs/planted_example.yaml``)::

    plants:
      - name: rich_calm_puts           # unique label, reported in dataset.json
        favours: [short_put, put_credit_spread]   # structure families expected to profit
        right: P                       # P or C
        dte: [20, 45]                  # calendar days to expiration, inclusive
        abs_delta: [0.15, 0.35]        # |delta| band, inclusive
        regimes: [calm]                # calm and/or stressed
        vol_points: 4.0                # + rich (sellers profit), - cheap (buyers profit)
        underlyings: [SPY]             # optional; default: every symbol
        taper_delta: 0.15              # optional, default 0.15
        taper_days: 30                 # optional, default 30
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backtest.errors import UserError

REGIMES: tuple[str, ...] = ("calm", "stressed")

# The structure families of DESIGN §4/§5 (the genome's structure types).
STRUCTURE_FAMILIES: tuple[str, ...] = (
    "long_call", "short_call", "long_put", "short_put",
    "long_straddle", "short_straddle", "long_strangle", "short_strangle",
    "call_debit_spread", "put_debit_spread", "call_credit_spread", "put_credit_spread",
    "iron_condor", "iron_butterfly",
    "call_calendar", "put_calendar", "call_diagonal", "put_diagonal",
)

Family = Literal[STRUCTURE_FAMILIES]  # type: ignore[valid-type]
Regime = Literal[REGIMES]  # type: ignore[valid-type]


class PlantError(UserError):
    """A plant file that cannot be read or does not follow the format."""


class Plant(BaseModel):
    """One planted mispricing (see the module docstring for the meaning of each field)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    favours: tuple[Family, ...] = Field(min_length=1)
    right: Literal["P", "C"]
    dte: tuple[int, int]
    abs_delta: tuple[float, float]
    regimes: tuple[Regime, ...] = Field(min_length=1)
    vol_points: float
    underlyings: tuple[str, ...] | None = None
    # defaults wide enough that a few vol points leave no tradable (bid/ask) vertical or
    # calendar arbitrage: a steeper fade makes the far edge of the band dearer than its neighbours
    taper_delta: float = Field(default=0.15, ge=0.0, le=0.5)
    taper_days: float = Field(default=30.0, ge=0.0, le=90.0)

    @field_validator("dte")
    @classmethod
    def _dte_band(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= v[0] <= v[1] <= 1000:
            raise ValueError(f"expected [min, max] with 0 <= min <= max <= 1000, got {list(v)}")
        return v

    @field_validator("abs_delta")
    @classmethod
    def _delta_band(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 <= v[0] <= v[1] <= 1.0:
            raise ValueError(f"expected [min, max] with 0 <= min <= max <= 1, got {list(v)}")
        return v

    @field_validator("vol_points")
    @classmethod
    def _size(cls, v: float) -> float:
        if v == 0 or abs(v) > 30:
            raise ValueError(f"expected a non-zero size of at most 30 vol points, got {v}")
        return v

    def applies_to(self, symbol: str) -> bool:
        return self.underlyings is None or symbol in self.underlyings


class PlantFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plants: tuple[Plant, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> "PlantFile":
        names = [p.name for p in self.plants]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"plant names must be unique, repeated: {', '.join(dup)}")
        return self


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        value = f" (got {err['input']!r})" if err["type"] != "missing" and not isinstance(err["input"], dict) else ""
        parts.append(f"{loc}: {err['msg']}{value}")
    return "; ".join(parts)


def parse_plants(data: object, source: str = "plants") -> tuple[Plant, ...]:
    """Validate already-loaded plant data (a mapping with a ``plants`` list)."""
    try:
        return PlantFile.model_validate(data).plants
    except ValidationError as exc:
        raise PlantError(f"{source}: {_one_line(exc)}") from None


def load_plants(path: str | Path) -> tuple[Plant, ...]:
    """Read and validate a plant YAML file; every problem is one line naming file and key."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PlantError(f"{path}: cannot read plant file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise PlantError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise PlantError(f"{path}: expected a mapping with a 'plants' list, got {type(data).__name__}")
    return parse_plants(data, str(path))
