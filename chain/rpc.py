"""A read-only connection to a node over JSON-RPC: what an auditor opens.

The auditor imports this, :mod:`chain.deployment` and :mod:`chain.errors` (and the read-only
:class:`chain.reader.ChainReader` with its value types), never the writing client.
"""

from __future__ import annotations

from pathlib import Path

from web3 import Web3

from chain.deployment import Deployment, read_deployment
from chain.errors import ChainUnavailableError
from chain.reader import ChainReader

__all__ = ["connect_reader", "http_web3"]


def http_web3(rpc_url: str, *, timeout_s: float = 10.0) -> Web3:
    """A web3 on the node at ``rpc_url`` over HTTP (no check that it answers)."""
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))


def connect_reader(rpc_url: str, *, deployment: Deployment | Path | str, timeout_s: float = 10.0) -> ChainReader:
    """A :class:`ChainReader` on the node at ``rpc_url`` for ``deployment`` (or the deployment
    file at that path), after checking that the node answers and that the code at the
    deployment's addresses is the committed contracts' (:class:`ChainUnavailableError`,
    :class:`DeploymentError`)."""
    if not rpc_url.startswith(("http://", "https://")):
        raise ChainUnavailableError(f"expected an http(s):// JSON-RPC URL, got {rpc_url!r}")
    if not isinstance(deployment, Deployment):
        deployment = read_deployment(deployment)
    web3 = http_web3(rpc_url, timeout_s=timeout_s)
    reader = ChainReader(web3, deployment=deployment)
    reader.verify_deployment()
    return reader
