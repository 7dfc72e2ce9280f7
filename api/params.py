"""The one integer type of every path and query parameter, and of every cursor key.

The store keeps integers as signed 64-bit (SQLite INTEGER, PostgreSQL BIGINT). A larger value
handed to a query does not merely match nothing: the driver raises (``OverflowError`` on SQLite)
and the client would see a 500. So the bound is part of the declaration, checked by FastAPI
before any route runs (422, and published in the OpenAPI schema as ``maximum``); negative values
are meaningless for every number the API takes (times, seqs, epochs, ids, sizes).
"""

from __future__ import annotations

from typing import Annotated, Final

import annotated_types

__all__ = ["MAX_STORE_INT", "StoreInt", "in_store_range"]

MAX_STORE_INT: Final = 2**63 - 1

# annotated_types rather than pydantic.Field: FastAPI keeps only the last FieldInfo of an
# Annotated (the Path/Query a route adds), but keeps these constraints beside it.
StoreInt = Annotated[int, annotated_types.Ge(0), annotated_types.Le(MAX_STORE_INT)]


def in_store_range(value: object) -> bool:
    """Whether ``value`` is an int (not a bool) the store can hold as a non-negative key."""
    return type(value) is int and 0 <= value <= MAX_STORE_INT
