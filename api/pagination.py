"""Opaque cursors for keyset pagination.

A cursor is the sort key of the last item of a page, as base64url JSON. Clients must not build
or read them; the server checks each one's shape and answers 422 when it is not a cursor of the
list asked for. Integer keys are checked to be ones the store can hold (``api.params``): a
hand-edited ``1e30`` would otherwise reach the driver and overflow.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Final

from api.errors import ApiError
from api.params import in_store_range

__all__ = ["MAX_LIMIT", "decode_cursor", "encode_cursor"]

MAX_LIMIT: Final = 1000


def encode_cursor(kind: str, *key: int | str) -> str:
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _is_key(value: object, kind: type) -> bool:
    if kind is int:
        return in_store_range(value)
    return type(value) is kind


def decode_cursor(token: str, kind: str, *types: type) -> tuple[int | str, ...]:
    """The key in ``token``, checked to be a ``kind`` cursor of ``types``."""
    try:
        padded = token + "=" * (-len(token) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        value = None
    if (
        not isinstance(value, list)
        or len(value) != len(types) + 1
        or value[0] != kind
        or not all(_is_key(v, t) for v, t in zip(value[1:], types, strict=True))
    ):
        raise ApiError(
            422,
            f"cursor is not a cursor of this {kind} list: pass back next_cursor unchanged",
            reason="invalid_parameter",
        )
    return tuple(value[1:])
