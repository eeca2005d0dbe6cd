"""The seeds' strategies as baselines (sleeves of StructureDNA + gates, and account limits).

Feature columns used (models.features): ``iv_rank`` (0..1), ``rsi_14``, ``price_vs_sma20`` and
``price_vs_sma50`` (relative distance of the close from the SMA), ``trend_regime`` (+1 close >
sma_50 > sma_200, -1 the reverse), ``returns_1d``, ``regime_rule`` (seed 001's rule table),
``regime_machine`` (seed 003's five-state machine) and ``edge_<name>`` / ``edge_<name>_side``
(seed 003's detectors). IV rank thresholds of the seeds (40, 65, 80 on 0..100) are 0.40, 0.65,
0.80 here.
"""
from __future__ import annotations

from typing import Any, Mapping

from backtest.dna import StructureDNA
from backtest.risk import RiskLimits
from models.baselines import Baseline, GateGroup, SleeveSpec
from models.regimes import MACHINE_LABELS, RULE_LABELS


def feature(name: str, op: str, value: float) -> dict[str, Any]:
    return {"kind": "feature", "feature": name, "op": op, "value": value}


def regime(classifier: str, labels: tuple[str, ...], *names: str) -> dict[str, Any]:
    # integer codes: the gate then works on any table, with or without recorded labels
    return {"kind": "regime", "classifier": classifier, "regimes": [labels.index(n) for n in names]}


def edge(name: str, side: int | None = None, min_strength: float = 0.5) -> dict[str, Any]:
    return {"kind": "edge", "edge": name, "min_strength": min_strength, "side": side}


def iv_rank_band(low: float | None, high: float | None) -> GateGroup:
    """low <= iv_rank < high (None: open)."""
    out = []
    if low is not None:
        out.append(feature("iv_rank", ">=", low))
    if high is not None:
        out.append(feature("iv_rank", "<", high))
    return tuple(out)


def dna(structure: str, **genes: Any) -> StructureDNA:
    return StructureDNA.from_dict({"structure_type": structure, **genes})


def sleeve(name: str, structure: str, when: tuple[GateGroup, ...] = ((),), **genes: Any) -> SleeveSpec:
    return SleeveSpec(name, dna(structure, **genes), when)


# --------------------------------------------------------------------------- seed 000

def fixed_profiles() -> list[Baseline]:
    """Seed 000's two hand-designed profiles, with the DNA's default exits (the seed gives
    none): a long ATM straddle at 60-90 DTE, and short-dated gamma (a long ATM straddle at 7-14
    DTE), entered whenever flat."""
    return [
        Baseline("seed000_long_straddle_60_90", "000-structure-discovery-engine.md",
                 "Profile 1: long ATM straddle, 60-90 DTE",
                 (sleeve("straddle_60_90", "long_straddle", front_dte_min=60, front_dte_max=90,
                         back_dte_min=91, back_dte_max=120),), needs_features=False),
        Baseline("seed000_short_dated_gamma", "000-structure-discovery-engine.md",
                 "Profile 2: short-dated gamma, long ATM straddle 7-14 DTE",
                 (sleeve("straddle_7_14", "long_straddle", front_dte_min=7, front_dte_max=14),),
                 needs_features=False),
    ]


# --------------------------------------------------------------------------- seed 001 §5

# direction signal (transparent, until the ML direction model exists): trend by the 50-day SMA,
# confirmed by RSI(14); "neutral" is an RSI near 50
BULLISH: GateGroup = (feature("price_vs_sma50", ">", 0.0), feature("rsi_14", ">", 55.0))
BEARISH: GateGroup = (feature("price_vs_sma50", "<", 0.0), feature("rsi_14", "<", 45.0))
NEUTRAL: GateGroup = (feature("rsi_14", ">=", 45.0), feature("rsi_14", "<=", 55.0))
DIRECTIONS = {"bull": BULLISH, "bear": BEARISH, "neutral": NEUTRAL}
# high confidence: the 50/200 trend stack agrees with the signal
HIGH_CONFIDENCE = {"bull": (feature("trend_regime", "==", 1.0),), "bear": (feature("trend_regime", "==", -1.0),)}

SEED001_DELTAS = {"low_vol": (0.40, 0.30), "high_vol": (0.30, 0.20), "iv_contraction": (0.25, 0.15),
                  "iv_expansion": (0.45, 0.35), "neutral": (0.35, 0.25)}
SEED001_WIDTH_USD = {"low_vol": 5.0, "high_vol": 10.0, "iv_contraction": 5.0, "iv_expansion": 5.0, "neutral": 5.0}
SEED001_BASE_DTE = {"low_vol": 30, "high_vol": 21, "iv_contraction": 21, "iv_expansion": 45, "neutral": 30}
SEED001_REGIME_MULT = {"low_vol": 1.0, "high_vol": 0.5, "iv_contraction": 1.0, "iv_expansion": 0.75, "neutral": 0.75}
# regime -> direction -> structure (seed 001 §5.1); missing pairs do not trade
SEED001_MATRIX = {
    "low_vol": {"bull": "call_debit_spread", "bear": "put_debit_spread"},
    "high_vol": {"bull": "put_credit_spread", "bear": "call_credit_spread", "neutral": "iron_condor"},
    "iv_contraction": {"bull": "put_credit_spread", "bear": "call_credit_spread"},
    "iv_expansion": {"bull": "call_debit_spread", "bear": "put_debit_spread"},
    "neutral": {"bull": "call_debit_spread", "bear": "put_debit_spread"},  # high confidence only
}
# iv_rank bands and their DTE adjustment (seed 001 §5.3)
SEED001_IV_BANDS = (("ivr_low", None, 0.3, +7), ("ivr_mid", 0.3, 0.7, 0), ("ivr_high", 0.7, None, -7))
SEED001_DTE_HALF_WINDOW = 4  # the target DTE +/- 4 days: a weekly listing always has one


def seed001_dte(regime_name: str, adjust: int) -> int:
    return max(14, min(45, SEED001_BASE_DTE[regime_name] + adjust))


def regime_matrix(step: float) -> Baseline:
    """Seed 001 §5: the regime x direction matrix with its delta, DTE, width and size rules."""
    sleeves = []
    for reg, row in SEED001_MATRIX.items():
        long_delta, short_delta = SEED001_DELTAS[reg]
        width = max(1, round(SEED001_WIDTH_USD[reg] / step))
        for direction, structure in row.items():
            gates = (regime("rule", RULE_LABELS, reg),) + DIRECTIONS[direction]
            confidence = 0.5  # no direction model yet: the middle of the seed's 0..1
            if reg == "neutral":
                gates += HIGH_CONFIDENCE[direction]
                confidence = 1.0
            risk = 0.02 * SEED001_REGIME_MULT[reg] * (0.5 + 0.5 * confidence)
            for band, low, high, adjust in SEED001_IV_BANDS:
                target = seed001_dte(reg, adjust)
                sleeves.append(sleeve(
                    f"{reg}_{direction}_{band}", structure, (gates + iv_rank_band(low, high),),
                    front_dte_min=target - SEED001_DTE_HALF_WINDOW, front_dte_max=target + SEED001_DTE_HALF_WINDOW,
                    long_strike_delta=long_delta, short_strike_delta=short_delta, spread_width_strikes=width,
                    max_position_pct=risk, max_positions=3))
    return Baseline(
        "seed001_regime_matrix", "001-ml-options-trading-system.md",
        "Regime (rule classifier) x direction (SMA50 + RSI14) matrix, seed 001 §5 deltas/DTE/widths/sizing",
        tuple(sleeves),
        notes=("seed 001: direction is SMA50/RSI14 (no ML model yet), confidence 0.5 (1.0 for the neutral "
               "regime's high-confidence trades); the 1-10 contract clamp is not applied (sizing is risk-based: "
               "a trade whose max loss exceeds its risk budget is skipped rather than taken at 1 contract); "
               "exits are the DNA defaults (the seed gives none)",))


# --------------------------------------------------------------------------- seed 002

SEED002_BULL: GateGroup = (feature("rsi_14", ">", 50.0), feature("price_vs_sma20", ">", 0.0))  # sell puts
SEED002_BEAR: GateGroup = (feature("rsi_14", "<", 50.0), feature("price_vs_sma20", "<", 0.0))  # sell calls
PRIMARY_BOOK = dict(front_dte_min=40, front_dte_max=50, short_strike_delta=0.15, profit_target_pct=0.50,
                    stop_loss_pct=1.50, dte_exit=21, delta_breach=0.30, max_positions=10, max_total_risk_pct=0.10)
INCOME_POP_BOOK = dict(front_dte_min=7, front_dte_max=14, short_strike_delta=0.15, profit_target_pct=0.25,
                       stop_loss_pct=1.00, dte_exit=0, max_positions=10, max_position_pct=0.01,
                       max_total_risk_pct=0.10)
# confidence tiers (risk per trade by IV rank): 70-79 3%, 80-89 5%, 90-100 8%; below 70 the lowest tier
CONDOR_TIERS = ((0.65, 0.80, 0.03), (0.80, 0.90, 0.05), (0.90, None, 0.08))


def _both_directions(extra: GateGroup) -> tuple[GateGroup, ...]:
    return (SEED002_BULL + extra, SEED002_BEAR + extra)


def multi_book() -> Baseline:
    """Seed 002's target strategy: IV-rank floor 40, 0.15-delta entries behind the RSI/SMA20
    filter, an iron condor at IV rank >= 65 else a vertical on the filter's side, Primary book
    40-50 DTE, Income-Pop 7-14 DTE at IV rank >= 80, tiers for size, 10% day-at-risk."""
    sleeves = [
        sleeve("primary_put_spread", "put_credit_spread", (SEED002_BULL + iv_rank_band(0.40, 0.65),),
               max_position_pct=0.03, **PRIMARY_BOOK),
        sleeve("primary_call_spread", "call_credit_spread", (SEED002_BEAR + iv_rank_band(0.40, 0.65),),
               max_position_pct=0.03, **PRIMARY_BOOK),
    ]
    for low, high, risk in CONDOR_TIERS:
        sleeves.append(sleeve(f"primary_condor_ivr{int(low * 100)}", "iron_condor",
                              _both_directions(iv_rank_band(low, high)), max_position_pct=risk, **PRIMARY_BOOK))
    sleeves.append(sleeve("income_pop_condor", "iron_condor", _both_directions(iv_rank_band(0.80, None)),
                          **INCOME_POP_BOOK))
    return Baseline(
        "seed002_multi_book", "002-multi-book-strategy-migration.md",
        "Multi-book income: IVR>=40, 0.15-delta verticals / condors (IVR>=65), Primary 40-50 DTE + Income-Pop 7-14 DTE",
        tuple(sleeves),
        RiskLimits(max_total_risk=0.10, max_delta=0.30, max_drawdown=0.10),
        notes=("seed 002: portfolio delta limit 0.30 read as |dollar delta| <= 30% of equity; kill switch at "
               "the seed's 10% max-drawdown target (it names no threshold); IV rank 40-69 sized at the lowest "
               "tier (3%)",),
        vix_hedge={"max_vega_usd": -1000.0, "min_iv_rank": 0.60},
    )


def current_strategy() -> Baseline:
    """Seed 002's "current" strategy for its A/B test: IV rank >= 70 after a >= 1.5% daily move,
    a credit spread fading the move (put spread after a drop, call spread after a rally), exit at
    35% profit, otherwise held to expiry."""
    genes = dict(front_dte_min=30, front_dte_max=45, short_strike_delta=0.20, profit_target_pct=0.35,
                 stop_loss_pct=None, dte_exit=0, max_position_pct=0.02, max_positions=2)
    return Baseline(
        "seed002_current", "002-multi-book-strategy-migration.md",
        "Current strategy (A/B): IVR>=70 and a 1.5% move, credit spread fading the move, 35% profit target",
        (sleeve("fade_drop_put_spread", "put_credit_spread",
                ((feature("iv_rank", ">=", 0.70), feature("returns_1d", "<=", -0.015)),), **genes),
         sleeve("fade_rally_call_spread", "call_credit_spread",
                ((feature("iv_rank", ">=", 0.70), feature("returns_1d", ">=", 0.015)),), **genes)),
        notes=("seed 002 current: the seed gives no structure; modelled as a credit spread fading the move at "
               "a 0.20 delta (its 'fixed distance'), sized at 2% risk instead of a fixed 1-2 contracts",),
    )


# --------------------------------------------------------------------------- seed 003

NOT_PANIC = regime("machine", MACHINE_LABELS, "LOW_VOL_GRIND", "TREND_UP", "TREND_DOWN", "CHOP")
VOLMACHINE_CREDIT = dict(front_dte_min=30, front_dte_max=45, short_strike_delta=0.16, max_position_pct=0.01,
                         max_positions=5, max_total_risk_pct=0.10)


def volmachine() -> Baseline:
    """Seed 003's VolMachine: regime (five-state machine) -> edge detectors (strength >= 0.5) ->
    defined-risk structure -> risk engine (1% a trade, 10% total, 3% daily and 5% weekly loss
    limits, 15% drawdown kill switch)."""
    def machine(*names: str) -> Mapping[str, Any]:
        return regime("machine", MACHINE_LABELS, *names)

    vrp = edge("vrp", side=1)
    sleeves = (
        sleeve("vrp_condor", "iron_condor", ((vrp, machine("LOW_VOL_GRIND", "CHOP")),), **VOLMACHINE_CREDIT),
        sleeve("vrp_put_spread", "put_credit_spread", ((vrp, machine("TREND_UP")),), **VOLMACHINE_CREDIT),
        sleeve("vrp_call_spread", "call_credit_spread", ((vrp, machine("TREND_DOWN")),), **VOLMACHINE_CREDIT),
        sleeve("vrp_panic_wide_condor", "iron_condor", ((vrp, machine("HIGH_VOL_PANIC")),),
               **(VOLMACHINE_CREDIT | dict(spread_width_strikes=10, max_position_pct=0.005))),
        sleeve("skew_put_spread", "put_credit_spread", ((edge("skew", side=1), NOT_PANIC),), **VOLMACHINE_CREDIT),
        sleeve("skew_call_spread", "call_credit_spread", ((edge("skew", side=-1), NOT_PANIC),), **VOLMACHINE_CREDIT),
        sleeve("event_condor", "iron_condor", ((edge("event_vol"), NOT_PANIC),),
               **(VOLMACHINE_CREDIT | dict(front_dte_min=7, front_dte_max=21, dte_exit=2))),
        sleeve("term_calendar", "calendar_call", ((edge("term_structure", side=-1), NOT_PANIC),),
               front_dte_min=21, front_dte_max=35, back_dte_min=49, back_dte_max=70, long_strike_delta=0.50,
               max_position_pct=0.01, max_positions=5, max_total_risk_pct=0.10),
        sleeve("gamma_pin_butterfly", "iron_butterfly", ((edge("gamma_pressure", side=1), NOT_PANIC),),
               **(VOLMACHINE_CREDIT | dict(front_dte_min=14, front_dte_max=30))),
    )
    return Baseline(
        "seed003_volmachine", "003-volmachine-decision-engine.md",
        "VolMachine: machine regime x edges (VRP, skew, event, term, gamma) -> defined-risk structures, risk engine",
        sleeves,
        RiskLimits(max_total_risk=0.10, daily_loss=0.03, weekly_loss=0.05, max_drawdown=0.15),
        notes=("seed 003: an edge trades at strength >= 0.5; term-structure edge trades a call calendar when "
               "the front is rich (side -1); panic trades only VRP with wide wings at half size",),
    )


def baselines(step: float) -> list[Baseline]:
    """All baselines; ``step`` is the listed strike step (for seed 001's dollar widths)."""
    return [*fixed_profiles(), regime_matrix(step), multi_book(), current_strategy(), volmachine()]
