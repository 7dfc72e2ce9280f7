"""assetproof on an EVM chain: contracts, their committed artifacts, local nodes, the web3 client.

- ``chain/contracts/*.sol``: AnchorRegistry (append-only checkpoints of the RFC 6962 log, each
  checked on chain against the previous one with an RFC 9162 consistency proof), DeviceRegistry
  (devices as the registrar declares them, their keys over chain time), TariffRegistry (tariffs
  as the pricing authority publishes them), ReadingVerifier (one reading checked end to end),
  each role replaceable only by the governor after a delay (``Governed.sol``).
- :mod:`chain.compile`: ``python -m chain.compile [--check]`` with the npm solc pinned in
  ``chain/package.json``; the artifacts in ``chain/artifacts/`` are committed.
- :mod:`chain.devchain`: web3 helpers for development chains (in-process eth-tester, funding,
  block time); the anvil process itself is :mod:`devstack.anvil`.
- :mod:`chain.reader`: :class:`~chain.reader.ChainReader` (auditors), joining the readers of
  the contracts; :mod:`chain.writer`: :class:`~chain.writer.ChainClient` (one key per role:
  attestor, registrar, pricing authority, governor).
  With :mod:`chain.reverts` (the web3 edge), the only web3 users in assetproof.
- :mod:`chain.ids` (on-chain ids and key forms), :mod:`chain.types` (the values handed out).
- :mod:`chain.deployment`: the deployment file.

This package imports :mod:`protocol` and nothing else of assetproof. Importing ``chain`` itself
loads no web3: import the submodule you need.
"""

from chain.errors import (
    ChainError,
    ChainUnavailableError,
    CheckpointMismatchError,
    CompileError,
    ConfirmationTimeoutError,
    ContractRevert,
    DeploymentError,
    NodeError,
    TransactionFailedError,
)

__all__ = [
    "ChainError",
    "ChainUnavailableError",
    "CheckpointMismatchError",
    "CompileError",
    "ConfirmationTimeoutError",
    "ContractRevert",
    "DeploymentError",
    "NodeError",
    "TransactionFailedError",
]
