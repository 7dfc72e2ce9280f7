"""Strict readers for JSON values, shared by every format in ``protocol``: exact key sets,
integers that are really integers (``bool`` is not) within I-JSON's exact range."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Final

from protocol.errors import VerificationError

MAX_INT: Final = 2**53 - 1
"""The largest integer RFC 8785 (I-JSON) represents exactly."""

ErrorFactory = Callable[[str, str], VerificationError]
"""Builds the format's own error from a message and the dotted path of the offending field."""


def require_object(value: object, keys: Collection[str], path: str, *, error: ErrorFactory) -> dict[str, Any]:
    """``value`` if it is a JSON object with exactly ``keys``."""
    if not isinstance(value, dict):
        raise error(f"{path} must be a JSON object, got {type(value).__name__}", path)
    if value.keys() != set(keys):
        missing = sorted(set(keys) - value.keys())
        unknown = sorted(value.keys() - set(keys))
        parts = ([f"missing {missing}"] if missing else []) + ([f"unknown {unknown}"] if unknown else [])
        raise error(f"{path}: {', '.join(parts)}", path)
    return value


def require_int(
    obj: dict[str, Any], name: str, path: str, *, error: ErrorFactory, minimum: int = 0, maximum: int = MAX_INT
) -> int:
    """``obj[name]`` if it is an integer in ``minimum..maximum``."""
    value = obj[name]
    where = f"{path}.{name}"
    if type(value) is not int:
        raise error(f"{where} must be an integer, got {type(value).__name__}", where)
    if not minimum <= value <= maximum:
        raise error(f"{where} = {value} is outside {minimum}..{maximum}", where)
    return value
