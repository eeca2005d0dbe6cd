"""Genome evaluation: plain gene dicts in, plain metric records out (the worker side of the map).

``EvalContext`` is a small frozen, picklable description of the market and the walk-forward
layout. A worker process loads the market it names once (``market_for``) and keeps it for every
later batch, so a process pool or a Ray actor pays the load once. ``evaluate_batch`` (search
fitness over the folds) and ``evaluate_detail`` (daily returns over the folds and the lockbox,
for the final honesty statistics) are top-level functions: bind them to a context with
``functools.partial`` and they pickle.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from backtest.costs import Costs
from backtest.dna import StructureDNA
from backtest.engine import run as run_backtest, run_many
from backtest.errors import UserError
from backtest.index import ChainIndex
from backtest.store import Dataset
from discovery import walkforward as wf

IV_WINDOW_DAYS = 252  # trailing window of the IV-percentile gate


@dataclass(frozen=True)
class EvalContext:
    dataset: str
    underlying: str
    regimes: tuple[str, ...]          # regime labels; a DNA's entry_regime holds their positions
    iv_index: str | None              # index whose trailing percentile gates entries (None: no gate)
    costs: tuple[tuple[str, object], ...]
    layout: wf.FoldLayout
    confidence: float
    min_trades: int
    min_trades_penalty: float

    def make_costs(self) -> Costs:
        return Costs(**dict(self.costs))


@dataclass(frozen=True)
class Market:
    index: ChainIndex
    regime_codes: np.ndarray | None   # [n_days] position in EvalContext.regimes, None: no regime table
    iv_percentile: np.ndarray | None  # [n_days] in [0, 100], None: no IV index


def trailing_percentile(values: np.ndarray, window: int = IV_WINDOW_DAYS) -> np.ndarray:
    """Percentile (0-100) of each day's value among the trailing ``window`` values up to and
    including that day (no look-ahead); 50 on the first day."""
    out = np.full(values.shape, 50.0)
    for t in range(1, len(values)):
        past = values[max(0, t - window + 1):t + 1]
        out[t] = 100.0 * (np.sum(past < values[t]) + 0.5 * (np.sum(past == values[t]) - 1)) / (len(past) - 1)
    return out


def _aligned(table, column: str, dates: np.ndarray, what: str) -> np.ndarray:
    series = pd.Series(table.column(column).to_numpy(zero_copy_only=False),
                       index=pd.to_datetime(table.column("date").to_numpy()))
    aligned = series.reindex(pd.to_datetime(dates))
    if aligned.isna().any():
        missing = aligned.index[aligned.isna()][0].date()
        raise UserError(f"{what} has no value on {missing}, a day with option chains")
    return aligned.to_numpy()


def load_market(context: EvalContext) -> Market:
    dataset = Dataset(context.dataset)
    index = ChainIndex.from_dataset(dataset, context.underlying).set_read_only()
    if index.n_days != context.layout.n_days:
        raise UserError(f"{context.dataset}: {context.underlying} has option chains on {index.n_days} days but "
                        f"underlying bars on {context.layout.n_days}; expected one chain snapshot per bar day "
                        "(run `osd data validate`)")
    dates = index.dates
    regime_codes = None
    table = dataset.read_regimes(context.underlying)
    if table is not None:
        labels = _aligned(table, "regime", dates, f"{context.dataset}: regime table of {context.underlying}")
        unknown = sorted(set(labels) - set(context.regimes))
        if unknown:
            raise UserError(f"{context.dataset}: regime label(s) {unknown} not among the config's "
                            f"space.regimes {list(context.regimes)}")
        regime_codes = np.array([context.regimes.index(x) for x in labels], dtype=np.int64)
    iv = None
    if context.iv_index and context.iv_index in dataset.indices:
        closes = _aligned(dataset.read_index(context.iv_index), "close", dates,
                          f"{context.dataset}: index {context.iv_index}").astype(float)
        iv = trailing_percentile(closes)
    return Market(index, regime_codes, iv)


_MARKETS: dict[EvalContext, Market] = {}


def market_for(context: EvalContext) -> Market:
    """The market of ``context``, loaded once per process."""
    if context not in _MARKETS:
        _MARKETS[context] = load_market(context)
    return _MARKETS[context]


def install_market(context: EvalContext, market: Market) -> None:
    """Use ``market`` (e.g. read from a cluster's object store) as this process's market of ``context``."""
    _MARKETS[context] = market


def gate_mask(dna: StructureDNA, market: Market) -> np.ndarray:
    """Days on which the genome's entry filters pass (regime set and IV-percentile band)."""
    mask = np.ones(market.index.n_days, dtype=bool)
    if dna.entry_regime is not None and market.regime_codes is not None:
        mask &= np.isin(market.regime_codes, dna.entry_regime)
    if market.iv_percentile is not None:
        mask &= (market.iv_percentile >= dna.min_iv_percentile) & (market.iv_percentile <= dna.max_iv_percentile)
    return mask


def _run(context: EvalContext, batch: list[dict], start: int, end: int, entry_days: np.ndarray):
    market = market_for(context)
    dnas = [StructureDNA.from_dict(g) for g in batch]
    masks = np.stack([gate_mask(d, market)[start:end] & entry_days for d in dnas])
    dates = market.index.dates
    result = run_many(dnas, market.index, dates[start], dates[end - 1], context.make_costs(), masks)
    returns = wf.daily_returns(result.daily_pnl, result.equity)
    return result, returns


def _trades(result, i: int):
    sel = result.trade_genome == i
    return result.trade_entry_day[sel], result.trade_exit_day[sel], result.trade_pnl[sel]


def evaluate_batch(context: EvalContext, batch: list[dict]) -> list[dict]:
    """Walk-forward fitness of each genome over the training folds (never the lockbox)."""
    layout = context.layout
    result, returns = _run(context, batch, 0, layout.lockbox[0], layout.entry_days())
    return [wf.fold_fitness(returns[i], *_trades(result, i), layout, context.confidence,
                            context.min_trades, context.min_trades_penalty)
            for i in range(len(batch))]


def evaluate_detail(context: EvalContext, batch: list[dict]) -> list[dict]:
    """For the reported structures: pooled fold returns (for CSCV) and the lockbox, run once."""
    layout = context.layout
    _, fold_returns = _run(context, batch, 0, layout.lockbox[0], layout.entry_days())
    lo, hi = layout.lockbox
    box, box_returns = _run(context, batch, lo, hi, np.ones(hi - lo, dtype=bool))
    out = []
    for i in range(len(batch)):
        _, _, pnl = _trades(box, i)
        out.append({
            "fold_returns": wf.pooled_fold_returns(fold_returns[i], layout).tolist(),
            "lockbox": wf.series_metrics(box_returns[i], pnl),
        })
    return out


def evaluate_lockbox(context: EvalContext, batch: list[dict]) -> list[tuple]:
    """For tracking the reported structures: each one's lockbox backtest (with its entry gates; equity
    curve and trade log with legs) and the spot on the lockbox's first day."""
    market = market_for(context)
    lo, hi = context.layout.lockbox
    dates = market.index.dates
    out = []
    for genes in batch:
        dna = StructureDNA.from_dict(genes)
        box = run_backtest(dna, market.index, dates[lo], dates[hi - 1], context.make_costs(), gate_mask(dna, market)[lo:hi])
        out.append((box, float(market.index.close[lo])))
    return out


def bind(context: EvalContext):
    """(search evaluator, detail evaluator), both picklable."""
    return partial(evaluate_batch, context), partial(evaluate_detail, context)
