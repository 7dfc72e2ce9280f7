"""Where the operator says the chain is: a starting point for clients that check it themselves.

The API never talks to the chain. The dashboard does not take its word either: it computes its
own selectors (Keccak in the page), and a user pins the RPC URL and contract addresses from their
own deployment file; a check against the chain named here is shown as such, never as VERIFIED.
The selectors stay for other clients, computed here with eth_utils.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Final

from eth_utils.abi import function_signature_to_4byte_selector
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.context import Ctx
from api.models import DEPLOYMENT_UNREADABLE
from api.routes import PREFIX

router = APIRouter(prefix=PREFIX, tags=["epochs and checkpoints"])

SIGNATURES: Final = {
    "verifyCheckpoint": "verifyCheckpoint(uint64,uint64,bytes32,bytes32,bytes32,uint64,uint64)",
    "commitment": "commitment(uint64)",
    "count": "count()",
    # Custom errors: a reverted eth_call returns one of these selectors and its arguments.
    "UnknownEpoch": "UnknownEpoch(uint64)",
    "CheckpointMismatch": "CheckpointMismatch(uint64)",
}
SELECTORS: Final = {name: "0x" + function_signature_to_4byte_selector(sig).hex() for name, sig in SIGNATURES.items()}
_ADDRESS: Final = re.compile(r"0x[0-9a-fA-F]{40}")


class ChainInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chain_id: int | None = Field(description="From the deployment file; null when there is none.", examples=[31337])
    rpc_url: str | None = Field(
        description="The chain's JSON-RPC URL for browsers (ASSETPROOF_PUBLIC_RPC_URL); null when the chain has"
        " no endpoint a browser can reach (an in-process eth-tester), and then roots can only come through the API.",
        examples=["http://127.0.0.1:8545"],
    )
    anchor_registry: str | None = Field(
        description="The AnchorRegistry address.", examples=["0x5FbDB2315678afecb367f032d93F642f64180aa3"]
    )
    device_registry: str | None = Field(
        description="The DeviceRegistry address (null when the deployment file names none).",
        examples=["0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"],
    )
    selectors: dict[str, str] = Field(
        description="4-byte selectors of the AnchorRegistry functions and custom errors a client needs.",
        examples=[{"verifyCheckpoint": SELECTORS["verifyCheckpoint"]}],
    )
    signatures: dict[str, str] = Field(description="The Solidity signature each selector is the Keccak of.")


def _device_registry(path: Path) -> str | None:
    """The DeviceRegistry's address in the deployment file (the file's chain id and AnchorRegistry
    are read, and its errors reported, by ``api.anchors``)."""
    try:
        address = json.loads(path.read_text())["contracts"]["DeviceRegistry"]["address"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return address if isinstance(address, str) and _ADDRESS.fullmatch(address) else None


@router.get(
    "/chain",
    summary="Where the operator says the chain is",
    response_model=ChainInfo,
    responses=DEPLOYMENT_UNREADABLE,
)
def chain_info(ctx: Ctx) -> ChainInfo:
    """The chain id, a JSON-RPC URL a browser may call, the AnchorRegistry and DeviceRegistry
    addresses and the selectors of `verifyCheckpoint(epoch, treeSize, root, metaHash, assetsRoot,
    blockNumber, timestamp)` and its errors. The operator's word: a verifier should take these from its own
    deployment file (the dashboard lets its user pin them)."""
    chain = ctx.anchors.get()
    return ChainInfo(
        chain_id=None if chain is None else chain.chain_id,
        rpc_url=ctx.settings.public_rpc_url,
        anchor_registry=None if chain is None else chain.anchor_registry,
        device_registry=None if chain is None else _device_registry(ctx.settings.deployment),
        selectors=dict(SELECTORS),
        signatures=dict(SIGNATURES),
    )
