"""Run configuration for ``osd discover``: a YAML file validated by pydantic before any compute.

Every mistake a user can make is reported as one line naming the file, the key and what was
expected (unknown keys included). Checks that need arithmetic across sections (embargo versus the
longest possible holding period, lockbox length, data length versus the folds) run here too, so
a bad run fails in milliseconds rather than after an hour of search.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from backtest.costs import Costs
from backtest.dna import GENE_BOUNDS, OPTIONAL_GENES, TWO_EXPIRY_TYPES, StructureDNA, StructureType
from backtest.errors import UserError
from discovery.space import ORDERED_PAIRS

STRUCTURE_TYPES = tuple(t.value for t in StructureType)
NUMERIC_GENES = tuple(GENE_BOUNDS)

DEFAULT_BOUNDS: dict[str, tuple[float, float]] = {
    "front_dte_min": (7, 60),
    "front_dte_max": (14, 90),
    "back_dte_min": (30, 120),
    "back_dte_max": (45, 150),
    "long_strike_delta": (0.05, 0.60),
    "short_strike_delta": (0.05, 0.50),
    "spread_width_strikes": (1, 10),
    "min_iv_percentile": (0.0, 80.0),
    "max_iv_percentile": (20.0, 100.0),
    "profit_target_pct": (0.2, 2.0),
    "stop_loss_pct": (0.5, 3.0),
    "dte_exit": (0, 21),
}

TRADING_DAYS_PER_YEAR = 252


def calendar_to_trading_days(calendar_days: float) -> int:
    """An upper bound on the trading days inside ``calendar_days`` calendar days (5 of every 7, +1)."""
    return int(math.ceil(calendar_days * 5 / 7)) + 1


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SynthSpec(Strict):
    symbols: list[str] = ["SPY"]
    start: dt.date
    end: dt.date
    seed: int = 0
    mode: Literal["realistic", "null", "planted"] = "realistic"
    plant: str | None = Field(None, description="plant YAML (relative to the config file)")

    @model_validator(mode="after")
    def _check(self):
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        if self.mode == "planted" and not self.plant:
            raise ValueError("mode 'planted' needs a plant file")
        return self


class DataSpec(Strict):
    path: str | None = Field(None, description="canonical dataset directory")
    synth: SynthSpec | None = None
    cache_dir: str = Field("runs/data", description="where a synthesized dataset is kept")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.synth is None):
            raise ValueError("give exactly one of data.path (a dataset) or data.synth (a synthetic market)")
        return self


class SpaceSpec(Strict):
    structure_types: list[str] = list(STRUCTURE_TYPES)
    genes: dict[str, tuple[float, float]] = Field(default_factory=lambda: dict(DEFAULT_BOUNDS))
    fixed: dict[str, Any] = Field(default_factory=dict)
    regimes: list[str] = Field(["calm", "stressed"], description="regime labels of the data; entry_regime holds their positions")
    evolve_regimes: bool = True
    mutation_sigma: float = Field(0.1, gt=0, le=1, description="Gaussian step as a share of each real gene's range")

    @field_validator("structure_types")
    @classmethod
    def _types(cls, v):
        unknown = [t for t in v if t not in STRUCTURE_TYPES]
        if unknown:
            raise ValueError(f"unknown structure type(s) {unknown}; expected some of {list(STRUCTURE_TYPES)}")
        if not v:
            raise ValueError("empty: at least one structure type is needed")
        return list(dict.fromkeys(v))

    @field_validator("genes")
    @classmethod
    def _genes(cls, v):
        for name, (low, high) in v.items():
            if name not in NUMERIC_GENES:
                raise ValueError(f"unknown gene {name!r}; expected one of {list(NUMERIC_GENES)}")
            if not (math.isfinite(low) and math.isfinite(high)) or low > high:
                raise ValueError(f"gene {name!r}: bounds [{low}, {high}] must be finite with low <= high")
            low_limit, high_limit, kind = GENE_BOUNDS[name]
            if low < low_limit or high > high_limit:
                raise ValueError(f"gene {name!r}: bounds [{low}, {high}] leave the engine's range [{low_limit}, {high_limit}]")
            if kind is int and math.floor(high) < math.ceil(low):
                raise ValueError(f"integer gene {name!r}: no integer inside [{low}, {high}]")
        return {**DEFAULT_BOUNDS, **v}

    @model_validator(mode="after")
    def _feasible(self):
        fields = {f for f in StructureDNA.__dataclass_fields__ if f != "structure_type"}
        for name, value in self.fixed.items():
            if name not in fields:
                raise ValueError(f"fixed gene {name!r} is unknown; expected one of {sorted(fields)}")
            if value is None and name not in OPTIONAL_GENES | {"entry_regime"}:
                raise ValueError(f"fixed gene {name!r} cannot be null (only {sorted(OPTIONAL_GENES)} can be switched off)")
        for low_name, high_name in ORDERED_PAIRS:
            if self.bound(low_name)[0] > self.bound(high_name)[1]:
                raise ValueError(f"impossible search space: {low_name} >= {self.bound(low_name)[0]} "
                                 f"but {high_name} <= {self.bound(high_name)[1]}")
        if {t.value for t in TWO_EXPIRY_TYPES} & set(self.structure_types) and self.bound("back_dte_max")[1] <= self.bound("front_dte_min")[0]:
            raise ValueError("impossible search space: calendars/diagonals need back_dte_max above front_dte_min "
                             f"(back_dte_max <= {self.bound('back_dte_max')[1]}, front_dte_min >= {self.bound('front_dte_min')[0]})")
        if self.bound("dte_exit")[0] >= self.bound("front_dte_max")[1]:
            raise ValueError("impossible search space: dte_exit is never below front_dte_max, so no trade could be held")
        if not self.regimes or len(set(self.regimes)) != len(self.regimes):
            raise ValueError(f"regimes: expected distinct labels, got {self.regimes}")
        bad_regimes = set(self.fixed.get("entry_regime") or []) - set(self.regimes)
        if bad_regimes:
            raise ValueError(f"fixed entry_regime {sorted(bad_regimes)} not among regimes {self.regimes}")
        return self

    def bound(self, name: str) -> tuple[float, float]:
        """Bounds of a gene, a fixed gene collapsing to its value."""
        if name in self.fixed:
            v = math.nan if self.fixed[name] is None else float(self.fixed[name])
            return v, v
        return tuple(self.genes[name]) if name in self.genes else (math.nan, math.nan)

    def max_holding_calendar_days(self) -> float:
        """Longest a position can stay open: until its front leg expires (exits run on the front leg)."""
        return self.bound("front_dte_max")[1]

    def max_holding_trading_days(self) -> int:
        days = calendar_to_trading_days(self.max_holding_calendar_days())
        if "max_hold_days" in self.fixed:
            hold_cap = self.fixed["max_hold_days"]
        else:
            hold_cap = self.genes.get("max_hold_days", (None, None))[1]
        if hold_cap is not None:  # max_hold_days is in calendar days too
            days = min(days, calendar_to_trading_days(hold_cap))
        return days


class SearchSpec(Strict):
    algorithm: Literal["mu_plus_lambda", "nsga2"] = "mu_plus_lambda"
    population: int = Field(40, ge=2)
    generations: int = Field(10, ge=1)
    mu: int | None = Field(None, ge=2, description="survivors per generation (default: population)")
    lambda_: int | None = Field(None, alias="lambda", ge=1, description="offspring per generation (default: 2 x population)")
    cxpb: float = Field(0.5, ge=0, le=1)
    mutpb: float = Field(0.4, ge=0, le=1)
    tournament_size: int = Field(3, ge=2)
    seed: int = 0
    objectives: list[Literal["fitness", "sharpe", "max_drawdown", "n_trades"]] = ["fitness"]
    batch_size: int = Field(16, ge=1, description="genomes per evaluation task")
    diversity_floor: float = Field(0.1, ge=0, le=1, description="reinject random genomes when the mean normalized gene distance of the population falls below this (a random population sits near 0.4)")
    reinject_fraction: float = Field(0.25, ge=0, le=1)
    max_type_share: float = Field(0.5, gt=0, le=1, description="largest share of the survivors one structure type may hold while others compete (mu_plus_lambda)")
    refine_regimes: int = Field(3, ge=0, description="after the last generation, gate this many leaders to each smaller subset of their entry regimes (0: off); each variant that trades differently counts as a trial")

    @model_validator(mode="after")
    def _check(self):
        if self.cxpb + self.mutpb > 1:
            raise ValueError(f"cxpb + mutpb must be <= 1 (got {self.cxpb} + {self.mutpb})")
        if self.algorithm == "mu_plus_lambda" and len(self.objectives) != 1:
            raise ValueError("mu_plus_lambda takes one objective; use algorithm: nsga2 for several")
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"objectives repeat: {self.objectives}")
        return self

    @property
    def n_mu(self) -> int:
        return self.mu or self.population

    @property
    def n_lambda(self) -> int:
        return self.lambda_ or 2 * self.population


class WalkForwardSpec(Strict):
    folds: int = Field(4, ge=2)
    embargo_days: int | None = Field(None, ge=0, description="trading days between folds and before the lockbox (default: the longest possible holding period)")
    lockbox_days: int = Field(252, ge=1, description="trading days at the end of the data the search never sees")
    min_fold_days: int = Field(63, ge=10)


class FitnessSpec(Strict):
    confidence: float = Field(0.9, gt=0.5, lt=1, description="one-sided confidence of the Sharpe lower bound")
    min_trades: int = Field(20, ge=0, description="trades over the test folds below which fitness is penalised")
    min_trades_penalty: float = Field(0.05, ge=0, description="daily-Sharpe units subtracted at zero trades (linear in the shortfall)")


class HonestySpec(Strict):
    dsr_min: float = Field(0.95, gt=0, lt=1)
    pbo_max: float = Field(0.5, gt=0, le=1)
    min_lockbox_sharpe: float = Field(0.0, description="annualised Sharpe the lockbox must reach")
    min_lockbox_trades: int = Field(3, ge=0)
    pbo_candidates: int = Field(20, ge=2, description="structure types whose best genomes' daily P&L enter CSCV")
    pbo_blocks: int = Field(16, ge=2)
    top_n: int = Field(10, ge=1, description="structures reported")

    @field_validator("pbo_blocks")
    @classmethod
    def _even(cls, v):
        if v % 2:
            raise ValueError(f"must be even (CSCV splits the blocks in halves), got {v}")
        return v


class ReportSpec(Strict):
    baselines: bool = Field(True, description="run the seeds' hand-designed baselines on the lockbox and "
                                              "compare the discovered structures with them")


class RunConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    data: DataSpec
    underlying: str = "SPY"
    space: SpaceSpec = SpaceSpec()
    search: SearchSpec = SearchSpec()
    walk_forward: WalkForwardSpec = WalkForwardSpec()
    fitness: FitnessSpec = FitnessSpec()
    costs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of backtest.costs.Costs")

    @field_validator("costs")
    @classmethod
    def _costs(cls, v):
        unknown = sorted(set(v) - set(Costs.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown key(s) {unknown}; expected some of {', '.join(Costs.__dataclass_fields__)}")
        Costs(**{k: tuple(x) if isinstance(x, list) else x for k, x in v.items()})
        return v

    def make_costs(self) -> Costs:
        return Costs(**{k: tuple(x) if isinstance(x, list) else x for k, x in self.costs.items()})
    honesty: HonestySpec = HonestySpec()
    report: ReportSpec = ReportSpec()
    _source: str | None = PrivateAttr(None)  # the file the config came from, for messages and paths

    @property
    def source(self) -> str | None:
        return self._source

    @model_validator(mode="after")
    def _cross_checks(self):
        hold = self.space.max_holding_trading_days()
        wf = self.walk_forward
        if wf.embargo_days is not None and wf.embargo_days < hold:
            raise ValueError(f"walk_forward.embargo_days {wf.embargo_days} is shorter than the longest possible "
                             f"holding period ({hold} trading days, from front_dte_max <= {self.space.bound('front_dte_max')[1]}); "
                             "trades would straddle folds")
        if wf.lockbox_days < hold + 1:
            raise ValueError(f"walk_forward.lockbox_days {wf.lockbox_days} is too short to hold one trade "
                             f"(the longest holding period is {hold} trading days; need >= {hold + 1})")
        if self.data.synth and self.underlying not in self.data.synth.symbols:
            raise ValueError(f"underlying {self.underlying!r} is not among data.synth.symbols {self.data.synth.symbols}")
        return self

    @property
    def embargo_days(self) -> int:
        return self.walk_forward.embargo_days if self.walk_forward.embargo_days is not None else self.space.max_holding_trading_days()

    def min_data_days(self) -> int:
        """Trading days the folds, embargoes and lockbox need."""
        wf = self.walk_forward
        return wf.folds * wf.min_fold_days + wf.folds * self.embargo_days + wf.lockbox_days

    def check_data_length(self, n_days: int, where: str) -> None:
        need = self.min_data_days()
        if n_days < need:
            wf = self.walk_forward
            raise UserError(f"{self.source or 'config'}: data {where} has {n_days} trading days; "
                            f"{wf.folds} folds of >= {wf.min_fold_days} days, {wf.folds} embargoes of {self.embargo_days} "
                            f"and a lockbox of {wf.lockbox_days} need {need}")

    def resolve_path(self, path: str) -> Path:
        base = Path(self.source).parent if self.source else Path.cwd()
        p = Path(path)
        return p if p.is_absolute() else base / p

    def digest(self) -> str:
        """Hash of the resolved config: a checkpoint only resumes the run it came from."""
        text = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _describe(err: dict) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if not loc:  # a check across sections names its keys itself
        return msg
    if err["type"] == "extra_forbidden":
        return f"unknown key {loc!r}"
    if err["type"] == "missing":
        return f"missing key {loc!r}"
    value = err.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    return f"key {loc!r}: {msg}{shown}"


def parse_config(raw: Any, source: str = "config", overrides: dict[str, Any] | None = None) -> RunConfig:
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    raw = dict(raw)
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{source}: " + "; ".join(_describe(e) for e in exc.errors())) from None
    config._source = source
    return config


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> RunConfig:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_config(raw, str(path), overrides)
