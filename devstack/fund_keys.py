"""Give a deployment's own chain keys gas money on a local anvil node (``python -m
devstack.fund_keys``): docker-compose's provisioner runs it before ``chain deploy``.

Production mode refuses anvil's published development keys (``config.settings``), so a compose
deployment on its local anvil chain brings keys of its own, which anvil did not fund at genesis.
``anvil_setBalance`` is anvil's development RPC: on any other node this does nothing but say so,
and the keys' owners fund them as on any real chain.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Final

from eth_account import Account
from pydantic import SecretStr

from chain.devchain import dev_fund
from chain.rpc import http_web3
from config import load_settings

if TYPE_CHECKING:
    from web3 import Web3

__all__ = ["fund_keys", "main"]

WEI: Final = 10**21  # 1,000 ether: years of anchors at local gas prices


def fund_keys(w3: Web3, keys: list[str], *, wei: int = WEI) -> list[str] | None:
    """Fund each key's address on ``w3`` if it is an anvil node; the addresses funded, or None
    if the node is not anvil (nothing was done)."""
    if not str(w3.client_version).lower().startswith("anvil"):
        return None
    addresses = sorted({Account.from_key(key).address for key in keys})
    for address in addresses:
        dev_fund(w3, address, wei)
    return addresses


def main() -> int:
    settings = load_settings()
    keys = [
        value.get_secret_value() for name, value in settings if name.endswith("_key") and isinstance(value, SecretStr)
    ]
    w3 = http_web3(settings.rpc)
    funded = fund_keys(w3, keys)
    if funded is None:
        print(f"{settings.rpc} is not an anvil node: fund the deployment's keys there yourself")
        return 0
    for address in funded:
        print(f"funded {address} on the local anvil chain")
    return 0


if __name__ == "__main__":
    sys.exit(main())
