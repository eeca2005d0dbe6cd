"""Arrow schemas of the canonical store (DESIGN §3.1).

One place defines every column, its type and whether it may be null, so the synthetic market,
the importers and the readers cannot drift apart.
"""
from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

_dict_str = pa.dictionary(pa.int32(), pa.string())

CHAIN_SCHEMA = pa.schema(
    [
        pa.field("quote_date", pa.date32(), nullable=False),
        pa.field("underlying", _dict_str, nullable=False),
        pa.field("root", _dict_str, nullable=False),
        pa.field("expiration", pa.date32(), nullable=False),
        pa.field("strike", pa.float64(), nullable=False),
        pa.field("right", pa.string(), nullable=False),
        pa.field("style", pa.string(), nullable=False),
        pa.field("bid", pa.float64(), nullable=False),
        pa.field("ask", pa.float64(), nullable=False),
        pa.field("last", pa.float64()),
        pa.field("volume", pa.int64()),
        pa.field("open_interest", pa.int64()),
        pa.field("iv", pa.float64()),
        pa.field("delta", pa.float64()),
        pa.field("gamma", pa.float64()),
        pa.field("theta", pa.float64()),
        pa.field("vega", pa.float64()),
        pa.field("underlying_price", pa.float64(), nullable=False),
    ]
)

# Sort order inside every chain file (DESIGN §3.1); readers rely on it.
CHAIN_SORT_KEYS = ["quote_date", "expiration", "right", "strike"]
CHAIN_KEY = ["quote_date", "root", "expiration", "right", "strike"]

BAR_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32(), nullable=False),
        pa.field("open", pa.float64()),
        pa.field("high", pa.float64()),
        pa.field("low", pa.float64()),
        pa.field("close", pa.float64(), nullable=False),
        pa.field("volume", pa.int64()),
    ]
)

INDEX_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32(), nullable=False),
        pa.field("open", pa.float64()),
        pa.field("high", pa.float64()),
        pa.field("low", pa.float64()),
        pa.field("close", pa.float64(), nullable=False),
    ]
)

# Per-day market regime of an underlying (synthetic markets record their ground truth here;
# a user may supply one for real data).
REGIME_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32(), nullable=False),
        pa.field("regime", pa.string(), nullable=False),
    ]
)

QUARANTINE_REASON_FIELD = pa.field("reason", pa.string(), nullable=False)
QUARANTINE_SCHEMA = CHAIN_SCHEMA.append(QUARANTINE_REASON_FIELD).append(
    pa.field("source", pa.string())
)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Return `table` with exactly `schema`'s columns, order and types.

    Missing nullable columns are filled with nulls; a missing non-nullable column or a value
    that cannot be cast is an error naming the column.
    """
    if table.schema.equals(schema, check_metadata=True):  # the usual case: only the null rule to check
        for field, col in zip(schema, table.columns):
            if not field.nullable and col.null_count:
                raise ValueError(f"column {field.name!r}: {col.null_count} null values, expected none")
        return table
    columns = []
    for field in schema:
        if field.name in table.column_names:
            col = table.column(field.name)
            if not col.type.equals(field.type):
                try:
                    col = col.cast(field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise ValueError(
                        f"column {field.name!r}: cannot convert {col.type} to {field.type}: {exc}"
                    ) from None
            if not field.nullable and col.null_count:
                raise ValueError(f"column {field.name!r}: {col.null_count} null values, expected none")
        elif field.nullable:
            col = pa.nulls(table.num_rows, type=field.type)
        else:
            raise ValueError(f"missing required column {field.name!r}")
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)
