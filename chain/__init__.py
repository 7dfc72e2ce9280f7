"""assetproof on an EVM chain: contracts, their committed artifacts, local nodes, the web3 client.

- ``chain/contracts/*.sol``: AnchorRegistry (append-only checkpoints of the RFC 6962 log, each
  checked on chain against the previous one with an RFC 9162 consistency proof) and
  DeviceRegistry (device keys and when each was valid).
- :mod:`chain.compile`: ``python -m chain.compile [--check]`` with the npm solc pinned in
  ``chain/package.json``; the artifacts in ``chain/artifacts/`` are committed.
- :mod:`chain.devchain`: web3 helpers for development chains (in-process eth-tester, funding,
  block time); the anvil process itself is :mod:`devstack.anvil`.
- :mod:`chain.client`: :class:`~chain.client.ChainReader` (auditors) and
  :class:`~chain.client.ChainClient` (attestor, admin). The only web3 user in assetproof.
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
