from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from chain.errors import ContractRevert
from protocol.merkle.log import MerkleLog


def leaf(i: int, *, salt: bytes = b"") -> bytes:
    return b"reading-" + salt + i.to_bytes(8, "big")


def grow(log: MerkleLog, size: int, *, salt: bytes = b"") -> MerkleLog:
    """Append leaves until ``log`` holds ``size``."""
    log.extend(leaf(i, salt=salt) for i in range(log.size, size))
    return log


def meta(epoch: int) -> bytes:
    return hashlib.sha256(b"epoch metadata %d" % epoch).digest()


@contextmanager
def reverts(name: str, **arguments: Any) -> Iterator[pytest.ExceptionInfo[ContractRevert]]:
    """Expect a :class:`ContractRevert` named ``name`` whose arguments include ``arguments``."""
    with pytest.raises(ContractRevert) as info:
        yield info
    assert info.value.name == name, f"expected {name}, got {info.value}"
    for key, value in arguments.items():
        assert info.value.arguments[key] == value, f"{key}: {info.value.arguments}"


def flip(value: bytes, bit: int = 0) -> bytes:
    return bytes([value[0] ^ (1 << bit)]) + value[1:]
