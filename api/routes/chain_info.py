"""Where the chain is, for clients that check roots on it themselves (the dashboard).

The API never talks to the chain; it only says where a browser can reach it and which 4-byte
selectors to call, computed here with eth_utils so no client has to carry a Keccak
implementation of its own.
"""

from __future__ import annotations

from typing import Final

from eth_utils.abi import function_signature_to_4byte_selector
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from api.context import Ctx
from api.models import DEPLOYMENT_UNREADABLE
from api.routes import PREFIX

router = APIRouter(prefix=PREFIX, tags=["epochs and checkpoints"])

SIGNATURES: Final = {
    "verifyCheckpoint": "verifyCheckpoint(uint64,uint64,bytes32,bytes32,uint64,uint64)",
    "commitment": "commitment(uint64)",
    "count": "count()",
    # Custom errors: a reverted eth_call returns one of these selectors and its arguments.
    "UnknownEpoch": "UnknownEpoch(uint64)",
    "CheckpointMismatch": "CheckpointMismatch(uint64)",
}
SELECTORS: Final = {name: "0x" + function_signature_to_4byte_selector(sig).hex() for name, sig in SIGNATURES.items()}


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
    selectors: dict[str, str] = Field(
        description="4-byte selectors of the AnchorRegistry functions and custom errors a client needs.",
        examples=[{"verifyCheckpoint": SELECTORS["verifyCheckpoint"]}],
    )
    signatures: dict[str, str] = Field(description="The Solidity signature each selector is the Keccak of.")


@router.get(
    "/chain",
    summary="Where to check anchored checkpoints",
    response_model=ChainInfo,
    responses=DEPLOYMENT_UNREADABLE,
)
def chain_info(ctx: Ctx) -> ChainInfo:
    """The chain id, a JSON-RPC URL a browser may call, the AnchorRegistry address and the
    selectors of `verifyCheckpoint(epoch, treeSize, root, metaHash, blockNumber, timestamp)` and
    its errors: what a client needs to compare a bundle's checkpoint with the one on chain."""
    chain = ctx.anchors.get()
    return ChainInfo(
        chain_id=None if chain is None else chain.chain_id,
        rpc_url=ctx.settings.public_rpc_url,
        anchor_registry=None if chain is None else chain.anchor_registry,
        selectors=dict(SELECTORS),
        signatures=dict(SIGNATURES),
    )
