"""Trading costs and account settings of a backtest (DESIGN §4 "Fills", REFERENCES "Costs and
settlement")."""
from __future__ import annotations

from dataclasses import dataclass

from backtest.errors import UserError

FILL_MODELS = ("cross", "legs_slippage")


@dataclass(frozen=True)
class Costs:
    """How orders fill and what they cost.

    ``fill="cross"`` buys at the ask and sells at the bid. ``fill="legs_slippage"`` (ORATS-style)
    travels a share s of the bid-ask width: buy at bid + s x width, sell at ask - s x width, with
    s = ``slippage_by_legs[n_legs - 1]`` (75/66/56/53% for 1-4 legs). Commission is charged per
    contract per leg on every fill; a leg settled at expiration pays no commission, but an
    in-the-money American leg pays ``assignment_fee`` per contract (exercise/assignment).
    Naked shorts are margined Reg-T style with ``naked_margin_index`` for European (index)
    options and ``naked_margin_equity`` for American ones, floored at ``naked_margin_floor``.
    """

    fill: str = "cross"
    slippage_by_legs: tuple[float, float, float, float] = (0.75, 0.66, 0.56, 0.53)
    commission_per_contract: float = 0.65
    assignment_fee: float = 0.0
    initial_equity: float = 100_000.0
    multiplier: float = 100.0
    naked_margin_index: float = 0.15
    naked_margin_equity: float = 0.20
    naked_margin_floor: float = 0.10

    def __post_init__(self):
        problems = []
        if self.fill not in FILL_MODELS:
            problems.append(f"fill: {self.fill!r}, expected one of {', '.join(FILL_MODELS)}")
        if len(self.slippage_by_legs) != 4 or not all(0.0 <= s <= 1.0 for s in self.slippage_by_legs):
            problems.append(f"slippage_by_legs: {self.slippage_by_legs!r}, expected 4 shares in [0, 1]")
        for name in ("commission_per_contract", "assignment_fee"):
            if not getattr(self, name) >= 0:
                problems.append(f"{name}: {getattr(self, name)!r}, expected >= 0")
        for name in ("initial_equity", "multiplier"):
            if not getattr(self, name) > 0:
                problems.append(f"{name}: {getattr(self, name)!r}, expected > 0")
        for name in ("naked_margin_index", "naked_margin_equity", "naked_margin_floor"):
            if not 0.0 < getattr(self, name) <= 1.0:
                problems.append(f"{name}: {getattr(self, name)!r}, expected in (0, 1]")
        if problems:
            raise UserError("invalid costs: " + "; ".join(problems))

    @property
    def slippage_shares(self) -> tuple[float, float, float, float]:
        """Share of the width travelled, by leg count; 'cross' is s = 1 (buy ask, sell bid)."""
        return (1.0, 1.0, 1.0, 1.0) if self.fill == "cross" else tuple(self.slippage_by_legs)
