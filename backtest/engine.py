"""Python API of the backtest (DESIGN §4): ``run`` for one genome with a full trade log,
``run_many`` for a batch of genomes in one kernel call (``prange`` over genomes)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numba
import numpy as np
import pandas as pd

from backtest import engine_nb as nb
from backtest.costs import Costs
from backtest.dna import DNAError, StructureDNA, check
from backtest.errors import UserError
from backtest.index import ChainIndex
from backtest.metrics import equity_metrics, trade_metrics

EXIT_REASONS = nb.EXIT_REASONS


def genome_params(dna: StructureDNA) -> np.ndarray:
    """The kernel's parameter vector of one genome (layout: ``engine_nb.P_*``)."""
    p = np.empty(nb.N_PARAMS)
    p[nb.P_TYPE] = dna.structure_type.code
    p[nb.P_FRONT_MIN], p[nb.P_FRONT_MAX] = dna.front_dte_min, dna.front_dte_max
    p[nb.P_BACK_MIN], p[nb.P_BACK_MAX] = dna.back_dte_min, dna.back_dte_max
    p[nb.P_LONG_DELTA], p[nb.P_SHORT_DELTA] = dna.long_strike_delta, dna.short_strike_delta
    p[nb.P_WIDTH] = dna.spread_width_strikes
    off = math.nan
    p[nb.P_PROFIT_TARGET] = off if dna.profit_target_pct is None else dna.profit_target_pct
    p[nb.P_STOP_LOSS] = off if dna.stop_loss_pct is None else dna.stop_loss_pct
    p[nb.P_DELTA_BREACH] = off if dna.delta_breach is None else dna.delta_breach
    p[nb.P_DTE_EXIT] = -1 if dna.dte_exit is None else dna.dte_exit
    p[nb.P_MAX_HOLD] = -1 if dna.max_hold_days is None else dna.max_hold_days
    p[nb.P_RISK_PCT] = dna.max_position_pct
    p[nb.P_MAX_POSITIONS] = dna.max_positions
    p[nb.P_MAX_TOTAL_RISK] = dna.max_total_risk_pct
    return p


def cost_params(costs: Costs) -> np.ndarray:
    c = np.empty(nb.N_COSTS)
    c[nb.C_SLIP1:nb.C_SLIP1 + 4] = costs.slippage_shares
    c[nb.C_COMMISSION] = costs.commission_per_contract
    c[nb.C_ASSIGNMENT_FEE] = costs.assignment_fee
    c[nb.C_INITIAL_EQUITY] = costs.initial_equity
    c[nb.C_MULTIPLIER] = costs.multiplier
    c[nb.C_MARGIN_INDEX] = costs.naked_margin_index
    c[nb.C_MARGIN_EQUITY] = costs.naked_margin_equity
    c[nb.C_MARGIN_FLOOR] = costs.naked_margin_floor
    return c


def window_masks(entry_masks: Any, n_genomes: int, index: ChainIndex, d0: int, d1: int) -> np.ndarray:
    """Entry masks as a contiguous (n_genomes, window days) bool array. Accepts None (always),
    one mask for all genomes or one per genome, aligned to the index days or to the window."""
    n_t = d1 - d0
    if entry_masks is None:
        return np.ones((n_genomes, n_t), dtype=np.bool_)
    m = np.asarray(entry_masks, dtype=np.bool_)
    if m.ndim == 1:
        m = m[None, :]
    if m.ndim != 2 or m.shape[0] not in (1, n_genomes):
        raise UserError(f"entry mask of shape {np.shape(entry_masks)}: expected ({n_genomes}, days) or (days,)")
    if m.shape[1] == index.n_days:
        m = m[:, d0:d1]
    elif m.shape[1] != n_t:
        raise UserError(
            f"entry mask covers {m.shape[1]} days; expected the index's {index.n_days} "
            f"or the window's {n_t}"
        )
    return np.ascontiguousarray(np.broadcast_to(m, (n_genomes, n_t)))


# ChainIndex arrays in the kernel's argument order
INDEX_ARRAYS = ("days", "close", "day_group_start", "group_expiration", "group_root", "group_european",
                "group_row_start", "group_put_start", "group_monotone", "strike", "bid", "ask", "delta",
                "next_row")


def _read_only(array: np.ndarray) -> np.ndarray:
    """A non-writeable view: the kernel then compiles once, for the read-only arrays it gets
    from Ray's object store, whether or not the caller's index is writeable."""
    view = array.view()
    view.setflags(write=False)
    return view


def _block_size(n_genomes: int) -> int:
    """Genomes per kernel task: as many as possible (up to 128), so that a day's rows, fetched
    once, serve every genome of the block from cache; on several threads, two tasks per thread
    so that every thread gets work."""
    threads = numba.get_num_threads()
    per_task = n_genomes if threads == 1 else -(-n_genomes // (2 * threads))
    return max(1, min(128, per_task))


def _kernel(dnas: Sequence[StructureDNA], index: ChainIndex, start, end, costs: Costs, masks,
            record_legs: bool):
    problems = []
    for i, dna in enumerate(dnas):
        if not isinstance(dna, StructureDNA):
            raise DNAError(f"genome {i}: expected a StructureDNA, got {type(dna).__name__}")
        try:
            check(dna)
        except DNAError as exc:
            problems.append(f"genome {i}: {exc}")
    if problems:
        raise DNAError("; ".join(problems))
    if not dnas:
        raise UserError("no genomes to backtest")
    d0, d1 = index.day_range(start, end)
    params = np.stack([genome_params(d) for d in dnas])
    arrays = [_read_only(getattr(index, name)) for name in INDEX_ARRAYS]
    out = nb.run_genomes(
        params, cost_params(costs), _read_only(window_masks(masks, len(dnas), index, d0, d1)), d0, d1, *arrays,
        record_legs, _block_size(len(dnas)),
    )
    names = ("equity", "daily_pnl", "open_positions", "n_trades", "quote_gaps", "tr_entry",
             "tr_exit", "tr_contracts", "tr_reason", "tr_pnl", "tr_premium", "tr_risk", "tr_gaps",
             "tr_nlegs", "lg_strike", "lg_exp", "lg_root", "lg_call", "lg_qty", "lg_entry", "lg_exit",
             "lg_exit_day")
    return index.dates[d0:d1], dict(zip(names, out))


def _metrics(dates: np.ndarray, equity: np.ndarray, costs: Costs, pnl, days_held, risk, closed) -> dict:
    calendar_days = int((dates[-1] - dates[0]).astype(int)) + 1
    out: dict[str, Any] = equity_metrics(equity, costs.initial_equity, calendar_days)
    out |= trade_metrics(pnl[closed], days_held[closed], risk[closed])
    out["fill_model"] = costs.fill
    return out


@dataclass(frozen=True)
class TradeLegs:
    """Legs of every trade of a ``run_many`` (rows align with its flat trade arrays; columns are
    legs, the first ``n_legs`` of a row are used). Expirations are days since 1970-01-01 and
    roots are codes into the index's ``roots``, as in the ChainIndex."""

    n_legs: np.ndarray  # [n_trades]
    strike: np.ndarray  # float32 [n_trades, MAX_LEGS]
    expiration: np.ndarray  # int32 [n_trades, MAX_LEGS]
    root: np.ndarray  # int16 [n_trades, MAX_LEGS]
    is_call: np.ndarray  # bool [n_trades, MAX_LEGS]
    qty: np.ndarray  # int8 [n_trades, MAX_LEGS], +1 long, -1 short (per contract)


@dataclass(frozen=True)
class ManyResult:
    """Results of ``run_many``: per-genome daily arrays and flat per-trade arrays.

    Trades are ordered by genome, then entry day; day fields are positions in ``dates``. The
    trade of a position still open on the last day has reason ``open_at_end`` and its marked
    P&L; trade metrics count closed trades only (the equity curve counts everything)."""

    dates: np.ndarray  # datetime64[D] [n_days]
    equity: np.ndarray  # [n_genomes, n_days] mark-to-market equity after each day
    daily_pnl: np.ndarray  # [n_genomes, n_days]
    open_positions: np.ndarray  # [n_genomes, n_days]
    n_trades: np.ndarray  # [n_genomes], including open_at_end
    quote_gaps: np.ndarray  # [n_genomes], leg-days marked with a stale quote
    trade_genome: np.ndarray
    trade_entry_day: np.ndarray
    trade_exit_day: np.ndarray
    trade_pnl: np.ndarray
    trade_contracts: np.ndarray
    trade_reason: np.ndarray  # codes of EXIT_REASONS
    trade_risk: np.ndarray  # capital at risk of the trade (max loss or margin, all contracts)
    trade_premium: np.ndarray  # entry premium per unit (credit > 0, debit < 0)
    costs: Costs = field(default_factory=Costs)
    legs: TradeLegs | None = None  # with run_many(..., legs=True)

    @property
    def fill_model(self) -> str:
        return self.costs.fill

    @property
    def trade_days_held(self) -> np.ndarray:
        """Calendar days between entry and exit."""
        return (self.dates[self.trade_exit_day] - self.dates[self.trade_entry_day]).astype(np.int64)

    def metrics(self, i: int) -> dict[str, Any]:
        sel = self.trade_genome == i
        closed = self.trade_reason[sel] != nb.EXIT_OPEN_AT_END
        return _metrics(self.dates, self.equity[i], self.costs, self.trade_pnl[sel],
                        self.trade_days_held[sel], self.trade_risk[sel], closed)

    def metrics_table(self) -> pd.DataFrame:
        return pd.DataFrame([self.metrics(i) for i in range(len(self.equity))])


def run_many(
    dnas: Sequence[StructureDNA],
    index: ChainIndex,
    start=None,
    end=None,
    costs: Costs = Costs(),
    entry_masks=None,
    legs: bool = False,
) -> ManyResult:
    """Backtest many genomes over the same index in one kernel call. ``entry_masks``: None,
    one bool mask for all, or one per genome (rows), over the index days or the window days.
    ``legs=True`` also returns every trade's legs (for portfolio greeks and stress tests)."""
    dates, o = _kernel(list(dnas), index, start, end, costs, entry_masks, record_legs=legs)
    n = o["n_trades"]
    genome = np.repeat(np.arange(len(n)), n)
    # trade k of genome g sits at row g x days + k of the buffers seen as one long (rows, ...)
    # array: one 1-D gather per field (a 2-D fancy index per field took 4 ms for 64 genomes)
    flat = np.arange(int(n.sum())) + np.repeat(np.arange(len(n)) * len(dates) - (np.cumsum(n) - n), n)
    pick = lambda name: o[name].reshape(-1, *o[name].shape[2:])[flat]  # noqa: E731
    return ManyResult(
        dates=dates, equity=o["equity"], daily_pnl=o["daily_pnl"],
        open_positions=o["open_positions"], n_trades=n, quote_gaps=o["quote_gaps"],
        trade_genome=genome, trade_entry_day=pick("tr_entry"), trade_exit_day=pick("tr_exit"),
        trade_pnl=pick("tr_pnl"), trade_contracts=pick("tr_contracts"),
        trade_reason=pick("tr_reason"), trade_risk=pick("tr_risk"),
        trade_premium=pick("tr_premium"), costs=costs,
        legs=TradeLegs(pick("tr_nlegs"), pick("lg_strike"), pick("lg_exp"), pick("lg_root"),
                       pick("lg_call"), pick("lg_qty")) if legs else None,
    )


@dataclass(frozen=True)
class BacktestResult:
    dna: StructureDNA
    equity: pd.DataFrame  # date, equity, daily_pnl, open_positions
    trades: pd.DataFrame  # one row per trade with its legs (leg1_* ... leg4_*)
    metrics: dict[str, Any]
    fill_model: str
    quote_gaps: int


def run(
    dna: StructureDNA,
    index: ChainIndex,
    start=None,
    end=None,
    costs: Costs = Costs(),
    entry_mask=None,
) -> BacktestResult:
    """Backtest one genome: daily equity curve, trade log with legs and fills, metrics."""
    dates, o = _kernel([dna], index, start, end, costs, entry_mask, record_legs=True)
    n = int(o["n_trades"][0])
    entry, exit_ = o["tr_entry"][0, :n], o["tr_exit"][0, :n]
    trades = pd.DataFrame({
        "trade_id": np.arange(n),
        "entry_date": dates[entry],
        "exit_date": dates[exit_],
        "days_held": (dates[exit_] - dates[entry]).astype(np.int64),
        "structure_type": dna.structure_type.value,
        "contracts": o["tr_contracts"][0, :n],
        "entry_premium": o["tr_premium"][0, :n],
        "risk": o["tr_risk"][0, :n],
        "pnl": o["tr_pnl"][0, :n],
        "exit_reason": [EXIT_REASONS[int(r)] for r in o["tr_reason"][0, :n]],
        "quote_gaps": o["tr_gaps"][0, :n],
    })
    nlegs = o["tr_nlegs"][0, :n]
    epoch = np.datetime64("1970-01-01", "D")
    for i in range(nb.MAX_LEGS):
        has = nlegs > i
        trades[f"leg{i + 1}_right"] = np.where(has, np.where(o["lg_call"][0, :n, i], "C", "P"), None)
        trades[f"leg{i + 1}_qty"] = np.where(has, o["lg_qty"][0, :n, i], 0)
        trades[f"leg{i + 1}_strike"] = np.where(has, o["lg_strike"][0, :n, i].astype(np.float64), np.nan)
        trades[f"leg{i + 1}_expiration"] = np.where(has, epoch + o["lg_exp"][0, :n, i].astype("timedelta64[D]"),
                                                    np.datetime64("NaT"))
        trades[f"leg{i + 1}_entry_fill"] = np.where(has, o["lg_entry"][0, :n, i], np.nan)
        trades[f"leg{i + 1}_exit_fill"] = np.where(has, o["lg_exit"][0, :n, i], np.nan)
    equity = pd.DataFrame({
        "date": dates,
        "equity": o["equity"][0],
        "daily_pnl": o["daily_pnl"][0],
        "open_positions": o["open_positions"][0],
    })
    closed = trades["exit_reason"].to_numpy() != EXIT_REASONS[nb.EXIT_OPEN_AT_END]
    metrics = _metrics(dates, o["equity"][0], costs, trades["pnl"].to_numpy(),
                       trades["days_held"].to_numpy(), trades["risk"].to_numpy(), closed)
    metrics["quote_gaps"] = int(o["quote_gaps"][0])
    return BacktestResult(dna=dna, equity=equity, trades=trades, metrics=metrics,
                          fill_model=costs.fill, quote_gaps=int(o["quote_gaps"][0]))
