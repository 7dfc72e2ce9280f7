"""Where web3 meets assetproof: node and contract failures become :class:`~chain.errors.ChainError`.

Reverts are decoded against the contracts' ABIs into :class:`~chain.errors.ContractRevert` the
same way on anvil (web3's ``ContractCustomError`` with raw data) and on eth-tester
(``TransactionFailed`` with the data in its message).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_tester.exceptions import TransactionFailed  # type: ignore[import-untyped]
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception

from chain._artifacts import load_artifact
from chain.errors import ChainError, ChainUnavailableError, ConfirmationTimeoutError, ContractRevert

__all__ = ["decode_revert", "edge"]

_ERROR_STRING = bytes.fromhex("08c379a0")
_PANIC = bytes.fromhex("4e487b71")


@cache
def _error_table() -> dict[bytes, tuple[str, list[str], list[str]]]:
    table: dict[bytes, tuple[str, list[str], list[str]]] = {
        _ERROR_STRING: ("Error", ["reason"], ["string"]),
        _PANIC: ("Panic", ["code"], ["uint256"]),
    }
    for name in (
        "AnchorRegistry",
        "DeviceRegistry",
        "TariffRegistry",
        "ReadingVerifier",
        "ShareToken",
        "DemoStablecoin",
    ):
        for item in load_artifact(name).abi:
            if item["type"] == "error":
                inputs = item.get("inputs", [])
                selector = keccak(f"{item['name']}({','.join(i['type'] for i in inputs)})".encode())[:4]
                table[selector] = (item["name"], [i["name"] for i in inputs], [i["type"] for i in inputs])
    return table


def decode_revert(data: bytes, *, tx_hash: bytes | None = None) -> ContractRevert:
    """Revert data (selector and ABI-encoded arguments) as a :class:`ContractRevert`."""
    entry = _error_table().get(data[:4])
    if entry is None:
        return ContractRevert("unknown", data=data, tx_hash=tx_hash)
    name, names, types = entry
    try:
        values = abi_decode(types, data[4:])
    except Exception:  # malformed arguments: keep the raw data
        return ContractRevert(name, data=data, tx_hash=tx_hash)
    # Addresses as everywhere else in chain: checksummed.
    shown = [to_checksum_address(v) if t == "address" else v for t, v in zip(types, values, strict=True)]
    return ContractRevert(name, dict(zip(names, shown, strict=True)), data=data, tx_hash=tx_hash)


def _revert_data(exc: BaseException) -> bytes | None:
    """The raw revert data carried by a web3 or eth-tester exception, if any."""
    if isinstance(exc, ContractLogicError):
        data = exc.data
        if isinstance(data, str) and data.startswith("0x"):
            return bytes.fromhex(data[2:])
        if isinstance(data, str) and data.startswith("Reverted 0x"):
            return bytes.fromhex(data.split(" ", 1)[1][2:])
        return b""
    if isinstance(exc, TransactionFailed):
        message = str(exc.args[0]) if exc.args else ""
        text = message.removeprefix("execution reverted: ").strip()
        if text[:2] in ("b'", 'b"'):
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return b""
            return value if isinstance(value, bytes) else b""
        if text and text != message:  # a decoded Error(string) reason
            return _ERROR_STRING + abi_encode(["string"], [text])
        return b""
    return None


@contextmanager
def edge(*, tx_hash: bytes | None = None) -> Iterator[None]:
    """Turn web3 / eth-tester / transport failures into :class:`ChainError`."""
    try:
        yield
    except ChainError:
        raise
    except (ContractLogicError, TransactionFailed) as exc:
        data = _revert_data(exc)
        raise decode_revert(data or b"", tx_hash=tx_hash) from exc
    except TimeExhausted as exc:
        raise ConfirmationTimeoutError(str(exc)) from exc
    except OSError as exc:  # requests' ConnectionError and Timeout are OSErrors
        raise ChainUnavailableError(f"the chain node is unreachable: {exc.__class__.__name__}: {exc}") from exc
    except Web3Exception as exc:
        raise ChainError(f"{exc.__class__.__name__}: {exc}") from exc
