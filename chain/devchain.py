"""web3 helpers for development chains (anvil, or web3's in-process eth-tester): a fresh
in-process chain, funding an account, moving block time, mining. Test and demo tooling only."""

from __future__ import annotations

from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import Wei

__all__ = ["dev_fund", "eth_tester_web3", "mine", "set_next_block_timestamp"]


def eth_tester_web3() -> Web3:
    """A web3 on a fresh in-process eth-tester chain (py-evm, Prague rules, auto-mining)."""
    return Web3(EthereumTesterProvider())


# --- test-chain helpers (anvil and eth-tester both) ---------------------------------------------


def _is_eth_tester(w3: Web3) -> bool:
    return isinstance(w3.provider, EthereumTesterProvider)


def dev_fund(w3: Web3, address: str, wei: int = 10**19) -> None:
    """Give ``address`` ``wei`` on a development chain: ``anvil_setBalance`` on anvil (no
    account drains over a long session), a transfer from the first unlocked account on
    eth-tester."""
    target = Web3.to_checksum_address(address)
    if not _is_eth_tester(w3):
        w3.provider.make_request("anvil_setBalance", [target, hex(wei)])  # type: ignore[arg-type]
        return
    funder = w3.eth.accounts[0]
    tx_hash = w3.eth.send_transaction({"from": funder, "to": target, "value": Wei(wei)})
    w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01)


def set_next_block_timestamp(w3: Web3, timestamp: int) -> None:
    """Make the next block's timestamp ``timestamp`` (it must not go back in time)."""
    if _is_eth_tester(w3):
        w3.provider.make_request("testing_timeTravel", [timestamp])  # type: ignore[arg-type]
    else:
        w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])  # type: ignore[arg-type]


def mine(w3: Web3, blocks: int = 1) -> None:
    """Mine ``blocks`` empty blocks."""
    if _is_eth_tester(w3):
        w3.provider.make_request("evm_mine", [blocks])  # type: ignore[arg-type]
    else:
        w3.provider.make_request("anvil_mine", [hex(blocks)])  # type: ignore[arg-type]
