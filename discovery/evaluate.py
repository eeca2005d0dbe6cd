"""Genome evaluation: plain gene dicts in, plain metric records out (the worker side of the map).

``EvalContext`` is a small frozen, picklable description of the market and the walk-forward
layout. A worker process loads the market it names once (``market_for``) and keeps it for every
later batch, so a process pool or a Ray actor pays the load once. ``evaluate_batch`` (search
fitness over the folds) and ``evaluate_detail`` (daily returns over the folds and the reported
structures' lockbox backtests, for the final honesty statistics) are top-level functions: bind
them to a context with ``functools.partial`` and they pickle.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from backtest.costs import Costs
from backtest.dna import StructureDNA
from backtest.engine import BacktestResult, run, run_many
from backtest.errors import UserError
from backtest.index import ChainIndex
from backtest.store import Dataset
from discovery import walkforward as wf
from models.features.rolling import rolling_percentile
from models.gates import IVPercentileGate, iv_percentile_passes


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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form; :meth:`from_dict` rebuilds an equal context."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**out, "regimes": list(self.regimes), "costs": dict(self.costs), "layout": self.layout.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EvalContext":
        names = {f.name for f in dataclasses.fields(cls)}
        if set(names) - set(data):
            raise UserError(f"evaluation settings lack {', '.join(sorted(set(names) - set(data)))}")
        fields = {k: data[k] for k in names}
        return cls(**{**fields, "regimes": tuple(data["regimes"]), "costs": cost_items(data["costs"]),
                      "layout": wf.FoldLayout.from_dict(data["layout"])})


def cost_items(costs: Mapping[str, Any]) -> tuple[tuple[str, object], ...]:
    """The config's ``costs`` mapping as :attr:`EvalContext.costs` (hashable: lists become tuples)."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in costs.items()))


@dataclass(frozen=True)
class Gates:
    """What the entry gates read each trading day: light enough for the driver to load without
    the chain index (``gates_for``)."""
    n_days: int
    regime_codes: np.ndarray | None   # [n_days] position in EvalContext.regimes, None: no regime table
    iv_percentile: np.ndarray | None  # [n_days] share in [0, 1] (models.features), None: no IV index


@dataclass(frozen=True)
class Market:
    index: ChainIndex
    gates: Gates


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
    return Market(index, load_gates(context, dataset, index.dates))


def load_gates(context: EvalContext, dataset: Dataset, dates: np.ndarray) -> Gates:
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
        iv = rolling_percentile(pd.Series(closes)).to_numpy()
    return Gates(len(dates), regime_codes, iv)


_MARKETS: dict[EvalContext, Market] = {}
_GATES: dict[EvalContext, Gates] = {}


def market_for(context: EvalContext) -> Market:
    """The market of ``context``, loaded once per process."""
    if context not in _MARKETS:
        _MARKETS[context] = load_market(context)
    return _MARKETS[context]


def gates_for(context: EvalContext) -> Gates:
    """The gates' inputs of ``context`` on its underlying's bar days, loaded once per process
    (no chain index: the driver needs them to fingerprint genomes)."""
    if context not in _GATES:
        dataset = Dataset(context.dataset)
        dates = dataset.read_underlying(context.underlying).column("date").to_numpy()
        _GATES[context] = load_gates(context, dataset, dates)
    return _GATES[context]


def install_market(context: EvalContext, market: Market) -> None:
    """Use ``market`` (e.g. read from a cluster's object store) as this process's market of ``context``."""
    _MARKETS[context] = market


def gate_mask(dna: StructureDNA, gates: Gates) -> np.ndarray:
    """Days on which the genome's entry filters pass (regime set and IV-percentile band).

    IV percentiles are shares in [0, 1] everywhere but in the genome, whose band is in percent
    (0-100, seed 000's format): ``iv_band`` converts it, here and nowhere else. The full band
    (0-100, the default) is no filter, so days before the percentile is known still trade."""
    mask = np.ones(gates.n_days, dtype=bool)
    if dna.entry_regime is not None and gates.regime_codes is not None:
        mask &= np.isin(gates.regime_codes, dna.entry_regime)
    band = iv_band(dna)
    if gates.iv_percentile is not None and band != IVPercentileGate():
        mask &= iv_percentile_passes(gates.iv_percentile, band)
    return mask


def entry_fingerprint(context: EvalContext, dna: StructureDNA) -> bytes | None:
    """The days ``dna`` may enter on over the span the search evaluates (its gates and the folds'
    days, as :func:`evaluate_batch` runs it), packed; None when it may enter on none. Two genomes
    alike but for their gates and with equal fingerprints get identical walk-forward records."""
    mask = gate_mask(dna, gates_for(context))[:context.layout.lockbox[0]] & context.layout.entry_days()
    return np.packbits(mask).tobytes() if mask.any() else None


def iv_band(dna: StructureDNA) -> IVPercentileGate:
    """The genome's IV-percentile band (percent) as a models.gates gate (share of 1)."""
    return IVPercentileGate(dna.min_iv_percentile / 100.0, dna.max_iv_percentile / 100.0)


def _run(context: EvalContext, batch: list[dict], start: int, end: int, entry_days: np.ndarray):
    market = market_for(context)
    dnas = [StructureDNA.from_dict(g) for g in batch]
    masks = np.stack([gate_mask(d, market.gates)[start:end] & entry_days for d in dnas])
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


@dataclass(frozen=True)
class LockboxRun:
    """A reported structure's lockbox backtest (:func:`lockbox_backtest`), run once on a worker:
    the report takes its ``metrics``, tracking its curve, trade log and legs (no second run)."""

    result: BacktestResult
    metrics: dict
    spot: float  # the underlying's close on the lockbox's first day (the payoff diagram's entry)
    replay: dict  # replay_record(context)


FOLD_RETURNS, LOCKBOX = "fold_returns", "lockbox"  # what evaluate_detail computes for an item


def evaluate_detail(context: EvalContext, batch: list[tuple[str, dict]]) -> list:
    """For the final statistics, elementwise over ``(what, genes)`` items: for ``FOLD_RETURNS``,
    the genome's pooled fold returns (a list, for CSCV); for ``LOCKBOX`` (a reported structure),
    its :class:`LockboxRun`."""
    unknown = [what for what, _ in batch if what not in (FOLD_RETURNS, LOCKBOX)]
    if unknown:
        raise ValueError(f"evaluate_detail: unknown item kind {unknown[0]!r}")
    layout = context.layout
    out: list = [None] * len(batch)
    folds = [i for i, (what, _) in enumerate(batch) if what == FOLD_RETURNS]
    if folds:
        _, returns = _run(context, [batch[i][1] for i in folds], 0, layout.lockbox[0], layout.entry_days())
        for i, daily in zip(folds, returns):
            out[i] = wf.pooled_fold_returns(daily, layout).tolist()
    boxes = [i for i, (what, _) in enumerate(batch) if what == LOCKBOX]
    if boxes:
        spot, replay = float(market_for(context).index.close[layout.lockbox[0]]), replay_record(context)
        for i in boxes:
            out[i] = LockboxRun(*lockbox_backtest(context, StructureDNA.from_dict(batch[i][1])), spot, replay)
    return out


def lockbox_metrics(daily_pnl: np.ndarray, equity: np.ndarray, trade_pnl: np.ndarray) -> dict:
    """A structure's lockbox figures (the report's, MLflow's and `osd backtest`'s replay):
    the series metrics of its daily returns and the P&L of all its trades, and its total P&L."""
    returns = wf.daily_returns(daily_pnl, equity)
    return {**wf.series_metrics(returns, trade_pnl), "total_pnl": float(np.sum(daily_pnl))}


def lockbox_backtest(context: EvalContext, dna: StructureDNA) -> tuple[BacktestResult, dict]:
    """One structure on the lockbox span with its entry gates, as the report scores it
    (:func:`evaluate_detail`): the engine's full result (equity curve, trade log with legs) and
    :func:`lockbox_metrics`."""
    market = market_for(context)
    lo, hi = context.layout.lockbox
    dates = market.index.dates
    result = run(dna, market.index, dates[lo], dates[hi - 1], context.make_costs(), gate_mask(dna, market.gates)[lo:hi])
    metrics = lockbox_metrics(result.equity["daily_pnl"].to_numpy(), result.equity["equity"].to_numpy(),
                              result.trades["pnl"].to_numpy())
    return result, metrics


def replay_record(context: EvalContext) -> dict[str, Any]:
    """What replaying a structure's lockbox needs besides its DNA (logged with each structure,
    carried by ``osd top --json``): the context, its dataset as an absolute path, and the
    lockbox's first and last day (a check that the dataset is still the one evaluated)."""
    dates = market_for(context).index.dates
    lo, hi = context.layout.lockbox
    return {**context.to_dict(), "dataset": str(Path(context.dataset).resolve()),
            "lockbox_dates": [str(dates[lo]), str(dates[hi - 1])]}


def replay_context(record: Mapping[str, Any], dataset: str | None = None) -> EvalContext:
    """The context of a :func:`replay_record`, on ``dataset`` if given (a moved copy), after
    checking that the dataset exists and still has the evaluated days."""
    context = EvalContext.from_dict({**record, **({"dataset": str(dataset)} if dataset else {})})
    path = Path(context.dataset)
    if not path.exists():
        raise UserError(f"dataset {path} (where this structure was evaluated) does not exist; "
                        "pass --data with its new location, or re-create it")
    bars = Dataset(path).read_underlying(context.underlying).num_rows
    if bars != context.layout.n_days:
        raise UserError(f"dataset {path}: {context.underlying} has {bars} days of bars, the evaluated run had "
                        f"{context.layout.n_days}; this is not the dataset the structure was evaluated on")
    found = replay_record(context)["lockbox_dates"]
    if found != list(record["lockbox_dates"]):
        raise UserError(f"dataset {path}: the lockbox spans {found[0]}..{found[1]}, the evaluated run's spanned "
                        f"{record['lockbox_dates'][0]}..{record['lockbox_dates'][1]}; not the dataset evaluated")
    return context


def bind(context: EvalContext):
    """(search evaluator, detail evaluator), both picklable."""
    return partial(evaluate_batch, context), partial(evaluate_detail, context)
