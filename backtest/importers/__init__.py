"""Vendor importers: read option-chain files in vendor formats into the canonical store.

One module per format (long, optionsdx, cboe, ivolatility, generic) turns parse blocks into
canonical chain rows; :mod:`backtest.importers.pipeline` fills in IV and greeks, validates every
block and writes the store atomically; ``osd data import`` is the command line.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FORMATS = {
    "long": "HistoricalOptionData / Delta Neutral long CSV, one option per row",
    "optionsdx": "OptionsDX wide EOD: calls and puts side by side, bracketed headers",
    "cboe": "Cboe DataShop Option EOD Summary (15:45 quotes by default, or EOD)",
    "ivolatility": "iVolatility EOD Raw IV (IV of -1 = missing)",
    "generic": "any CSV/Parquet described by a YAML column mapping (--mapping)",
}


@dataclass(frozen=True)
class FormatSpec:
    """A picklable description of a format, built into a reader inside each worker."""

    name: str
    mapping: dict[str, Any] | None = None  # generic: the validated mapping as plain data
    cboe_quotes: str = "1545"

    def build(self):
        from backtest.importers import cboe, generic, ivolatility, long, optionsdx

        if self.name == "long":
            return long.LongFormat()
        if self.name == "optionsdx":
            return optionsdx.OptionsDxFormat()
        if self.name == "cboe":
            return cboe.CboeFormat(self.cboe_quotes)
        if self.name == "ivolatility":
            return ivolatility.IVolatilityFormat()
        if self.name == "generic":
            return generic.GenericFormat(generic.Mapping.model_validate(self.mapping))
        raise ValueError(f"unknown format {self.name!r}")
