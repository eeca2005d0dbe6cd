"""Entry conditions over the feature table, turned into per-day boolean masks for the backtest
kernel (DESIGN §8; the discovery genome encodes these as genes).

A gate is a frozen dataclass or the equivalent plain dict (``kind`` names the type):

=================  ======================================================================  ==========================
kind               fields                                                                  passes on day t when
=================  ======================================================================  ==========================
``regime``         ``classifier`` (rule, machine, gmm, user, synthetic), ``regimes``       regime_<classifier>[t] is one
                   (labels such as "low_vol", or integer codes)                            of the regimes
``iv_percentile``  ``low``, ``high`` in [0, 1]                                             low <= iv_percentile[t] <= high
``edge``           ``edge`` (vrp, term_structure, skew, event_vol, gamma_pressure),        edge_<edge>[t] >= min_strength
                   ``min_strength`` in [0, 1], optional ``side`` (+1 / -1)                 (and edge_<edge>_side[t] == side)
``feature``        ``feature`` (any column), ``op`` (<, <=, >, >=, ==, !=), ``value``      feature[t] op value
=================  ======================================================================  ==========================

Example: ``[{"kind": "regime", "classifier": "rule", "regimes": ["low_vol", "neutral"]},
{"kind": "iv_percentile", "low": 0.5, "high": 1.0}, {"kind": "edge", "edge": "vrp", "min_strength":
0.5}, {"kind": "feature", "feature": "rsi_14", "op": "<", "value": 30}]``.

Gates combine with AND. A day whose feature is NaN (not yet known, or an input missing) or that
is absent from the table fails the gate: no entry on an unknown condition. An empty gate list
passes every day.
"""
from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Union

import numpy as np
import pandas as pd

from backtest.errors import UserError
from models.features.edges import EDGES
from models.regimes import column as regime_column

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}


@dataclass(frozen=True)
class RegimeGate:
    classifier: str
    regimes: tuple[str | int, ...]


@dataclass(frozen=True)
class IVPercentileGate:
    low: float = 0.0
    high: float = 1.0


@dataclass(frozen=True)
class EdgeGate:
    edge: str
    min_strength: float
    side: int | None = None


@dataclass(frozen=True)
class FeatureGate:
    feature: str
    op: str
    value: float


Gate = Union[RegimeGate, IVPercentileGate, EdgeGate, FeatureGate]
KINDS: dict[str, type] = {"regime": RegimeGate, "iv_percentile": IVPercentileGate, "edge": EdgeGate,
                          "feature": FeatureGate}


def parse_gate(spec: Gate | Mapping[str, Any]) -> Gate:
    """A gate from its dict form (``kind`` plus the dataclass's fields), validated."""
    if isinstance(spec, tuple(KINDS.values())):
        gate = spec
    else:
        spec = dict(spec)
        kind = spec.pop("kind", None)
        if kind not in KINDS:
            raise UserError(f"gate {spec}: kind {kind!r} unknown, expected one of {', '.join(KINDS)}")
        cls = KINDS[kind]
        names = {f.name for f in dataclasses.fields(cls)}
        if set(spec) - names:
            raise UserError(f"{kind} gate: unknown field(s) {', '.join(sorted(set(spec) - names))}; "
                            f"expected {', '.join(sorted(names))}")
        if cls is RegimeGate and "regimes" in spec:
            spec["regimes"] = tuple(spec["regimes"])
        try:
            gate = cls(**spec)
        except TypeError as exc:
            raise UserError(f"{kind} gate: {exc}") from None
    if isinstance(gate, FeatureGate) and gate.op not in OPS:
        raise UserError(f"feature gate on {gate.feature!r}: op {gate.op!r} unknown, expected one of {' '.join(OPS)}")
    if isinstance(gate, EdgeGate) and gate.edge not in EDGES:
        raise UserError(f"edge gate: edge {gate.edge!r} unknown, expected one of {', '.join(EDGES)}")
    if isinstance(gate, IVPercentileGate) and not 0.0 <= gate.low <= gate.high <= 1.0:
        raise UserError(f"iv_percentile gate: band [{gate.low}, {gate.high}] must satisfy 0 <= low <= high <= 1")
    return gate


def gate_to_dict(gate: Gate) -> dict[str, Any]:
    kind = next(k for k, cls in KINDS.items() if isinstance(gate, cls))
    return {"kind": kind, **dataclasses.asdict(gate)}


def _column(rows: pd.DataFrame, name: str) -> np.ndarray:
    if name not in rows.columns:
        raise UserError(f"feature {name!r} is not in the feature table (known: {len(rows.columns)} columns, "
                        f"e.g. {', '.join(list(rows.columns)[:5])})")
    return rows[name].to_numpy(dtype=float)


def _regime_codes(table: pd.DataFrame, gate: RegimeGate) -> list[float]:
    labels = list(table.attrs.get("regime_labels", {}).get(gate.classifier, []))
    codes = []
    for regime in gate.regimes:
        if isinstance(regime, (int, np.integer)):
            codes.append(float(regime))
        elif regime in labels:
            codes.append(float(labels.index(regime)))
        else:
            raise UserError(f"regime gate: {regime!r} is not a regime of classifier {gate.classifier!r} "
                            f"(labels: {', '.join(map(str, labels)) or 'none recorded'})")
    return codes


def iv_percentile_passes(iv_percentile: np.ndarray, gate: IVPercentileGate) -> np.ndarray:
    """Days whose IV percentile (a share in [0, 1], as the feature table stores it) lies in the
    gate's band; NaN (not yet known) fails."""
    return (iv_percentile >= gate.low) & (iv_percentile <= gate.high)


def _passes(rows: pd.DataFrame, table: pd.DataFrame, gate: Gate) -> np.ndarray:
    # NaN compares False under every comparison but !=, which the `known` mask covers
    if isinstance(gate, RegimeGate):
        return np.isin(_column(rows, regime_column(gate.classifier)), _regime_codes(table, gate))
    if isinstance(gate, IVPercentileGate):
        return iv_percentile_passes(_column(rows, "iv_percentile"), gate)
    if isinstance(gate, EdgeGate):
        ok = _column(rows, f"edge_{gate.edge}") >= gate.min_strength
        if gate.side is not None:
            ok &= _column(rows, f"edge_{gate.edge}_side") == gate.side
        return ok
    x = _column(rows, gate.feature)
    return OPS[gate.op](x, gate.value) & ~np.isnan(x)


def entry_mask(feature_table: pd.DataFrame, dates: np.ndarray, gates: Iterable[Gate | Mapping[str, Any]]) -> np.ndarray:
    """Boolean mask over ``dates`` (datetime64 or int days since 1970-01-01, as in ChainArrays):
    True where every gate passes on that day's feature row."""
    dates = np.asarray(dates)
    if np.issubdtype(dates.dtype, np.integer):
        dates = dates.astype("datetime64[D]")
    mask = np.ones(len(dates), dtype=bool)
    gates = [parse_gate(g) for g in gates]
    if not gates:
        return mask
    rows = feature_table.reindex(pd.DatetimeIndex(dates.astype("datetime64[ns]")))
    for gate in gates:
        mask &= _passes(rows, feature_table, gate)
    return mask
