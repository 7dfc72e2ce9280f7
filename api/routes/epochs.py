"""Epochs, checkpoints and consistency proofs between them."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from api import queries
from api.context import Ctx, Cursor, Limit
from api.convert import checkpoint_out, epoch_out
from api.errors import ApiError, not_found
from api.models import (
    DEPLOYMENT_UNREADABLE,
    AnchoredCheckpointOut,
    AssetTotalsOut,
    AssetTotalsProofOut,
    CheckpointList,
    ConsistencyOut,
    EpochOut,
    EpochPage,
    Problem,
    TreeHead,
)
from api.pagination import decode_cursor, encode_cursor
from api.params import StoreInt
from api.routes import PREFIX
from attestor.epochs import metadata_of
from attestor.log_store import DbNodeStore
from protocol.asset_totals import totals_proof
from protocol.merkle.log import MerkleLog
from store.status import EpochStatus

router = APIRouter(prefix=PREFIX, tags=["epochs and checkpoints"])

EpochNumber = Annotated[StoreInt, Path(ge=0, description="Epoch number.", examples=[7])]


@router.get("/epochs", summary="Epochs, newest first", response_model=EpochPage, responses=DEPLOYMENT_UNREADABLE)
def list_epochs(
    ctx: Ctx,
    status: Annotated[
        Literal["closed", "sent", "anchored"] | None, Query(description="Only epochs in this state.")
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> EpochPage:
    """Each epoch with its window, leaves, root, metadata hash and metadata, and its anchoring:
    status, transaction, block, block time and gas."""
    before = None if cursor is None else int(decode_cursor(cursor, "epochs", int)[0])
    chain = ctx.anchors.get()
    with ctx.reader.connect() as conn:
        rows = queries.epochs_page(conn=conn, status=status, anchored_only=False, before=before, limit=limit)
    items = [epoch_out(r, chain) for r in rows[:limit]]
    return EpochPage(items=items, next_cursor=encode_cursor("epochs", items[-1].number) if len(rows) > limit else None)


@router.get(
    "/epochs/{number}",
    summary="One epoch",
    response_model=EpochOut,
    responses={404: {"model": Problem}, **DEPLOYMENT_UNREADABLE},
)
def get_epoch(ctx: Ctx, number: EpochNumber) -> EpochOut:
    with ctx.reader.connect() as conn:
        row = queries.epoch(conn=conn, number=number)
    if row is None:
        raise not_found(f"epoch {number}")
    return epoch_out(row, ctx.anchors.get())


@router.get(
    "/assets/{name}/epochs/{number}/totals-proof",
    summary="An asset's epoch totals with their proof in the assets tree",
    response_model=AssetTotalsProofOut,
    responses={404: {"model": Problem}},
)
def asset_totals_proof(ctx: Ctx, name: Annotated[str, Path(max_length=63)], number: EpochNumber) -> AssetTotalsProofOut:
    """The asset's totals for the epoch as the 83-byte leaf of the epoch's assets tree, its
    inclusion proof, and (once anchored) every field of the checkpoint: the arguments of
    `AnchorRegistry.verifyAssetTotals(checkpoint, totals, index, count, proof)`, which a contract
    or an `eth_call` checks against the chain without trusting this API."""
    with ctx.reader.connect() as conn:
        row = queries.epoch(conn=conn, number=number)
    if row is None:
        raise not_found(f"epoch {number}")
    meta = metadata_of(row)
    if name not in meta.assets:
        raise not_found(f"asset {name} in epoch {number}")
    proof = totals_proof(asset=name, epoch=number, currency=meta.tariff.currency, totals=meta.assets)
    leaf = proof.leaf
    anchored = row.status == EpochStatus.ANCHORED and row.block_number is not None and row.block_timestamp is not None
    return AssetTotalsProofOut(
        asset=name,
        asset_key=leaf.asset_key.hex(),
        epoch=number,
        totals=AssetTotalsOut(
            readings=leaf.readings,
            energy_wh=leaf.energy_wh,
            revenue=leaf.revenue,
            cost=leaf.cost,
            net=leaf.net,
            currency=leaf.currency,
        ),
        encoded=proof.encoded.hex(),
        index=proof.index,
        count=proof.count,
        proof=[p.hex() for p in proof.proof],
        assets_root=meta.assets_root.hex(),
        checkpoint=AnchoredCheckpointOut(
            epoch=number,
            tree_size=row.leaves_to,
            root=bytes(row.root).hex(),
            meta_hash=bytes(row.meta_hash).hex(),
            assets_root=meta.assets_root.hex(),
            block_number=row.block_number,
            timestamp=row.block_timestamp,
        )
        if anchored
        else None,
    )


@router.get(
    "/checkpoints",
    summary="Anchored checkpoints, newest first",
    response_model=CheckpointList,
    responses=DEPLOYMENT_UNREADABLE,
)
def list_checkpoints(ctx: Ctx, limit: Limit = 100, cursor: Cursor = None) -> CheckpointList:
    """What the AnchorRegistry holds for each anchored epoch (tree size, root, metadata hash)
    and where it was anchored."""
    before = None if cursor is None else int(decode_cursor(cursor, "checkpoints", int)[0])
    chain = ctx.anchors.get()
    with ctx.reader.connect() as conn:
        rows = queries.epochs_page(conn=conn, status=None, anchored_only=True, before=before, limit=limit)
    items = [checkpoint_out(r, chain) for r in rows[:limit]]
    return CheckpointList(
        items=items, next_cursor=encode_cursor("checkpoints", items[-1].epoch) if len(rows) > limit else None
    )


@router.get(
    "/consistency",
    summary="Consistency proof between two checkpoints",
    response_model=ConsistencyOut,
    response_model_by_alias=True,
    responses={404: {"model": Problem}, 422: {"model": Problem}},
)
def consistency(
    ctx: Ctx,
    from_epoch: Annotated[StoreInt | None, Query(alias="from", ge=0, description="Older checkpoint, by epoch.")] = None,
    to_epoch: Annotated[StoreInt | None, Query(alias="to", ge=0, description="Newer checkpoint, by epoch.")] = None,
    from_size: Annotated[StoreInt | None, Query(ge=0, description="Older tree, by size (instead of from).")] = None,
    to_size: Annotated[StoreInt | None, Query(ge=0, description="Newer tree, by size (instead of to).")] = None,
) -> ConsistencyOut:
    """The RFC 9162 proof that the newer tree extends the older one, with both roots. Name the
    trees by epoch (`from`, `to`) or by tree size (`from_size`, `to_size`)."""
    if from_size is None and to_size is None and from_epoch is not None and to_epoch is not None:
        return _consistency(ctx, from_epoch=from_epoch, to_epoch=to_epoch)
    if from_epoch is None and to_epoch is None and from_size is not None and to_size is not None:
        return _consistency(ctx, from_size=from_size, to_size=to_size)
    raise ApiError(
        422,
        "give either 'from' and 'to' (epochs) or 'from_size' and 'to_size' (tree sizes)",
        reason="invalid_parameter",
    )


def _consistency(
    ctx: Ctx,
    *,
    from_epoch: int | None = None,
    to_epoch: int | None = None,
    from_size: int = 0,
    to_size: int = 0,
) -> ConsistencyOut:
    with ctx.reader.connect() as conn, DbNodeStore(ctx.reader).bound(conn) as store:
        size1, size2 = from_size, to_size
        if from_epoch is not None and to_epoch is not None:
            if to_epoch < from_epoch:
                raise ApiError(422, f"'to' ({to_epoch}) is before 'from' ({from_epoch})", reason="invalid_parameter")
            old, new = queries.epoch(conn=conn, number=from_epoch), queries.epoch(conn=conn, number=to_epoch)
            if old is None or new is None:
                raise not_found(f"epoch {from_epoch if old is None else to_epoch}")
            size1, size2 = int(old.leaves_to), int(new.leaves_to)
        log = MerkleLog(store)
        if size2 > log.size:
            raise ApiError(422, f"tree size {size2} is beyond the log ({log.size} leaves)", reason="invalid_parameter")
        if size1 > size2:
            raise ApiError(422, f"'from_size' ({size1}) exceeds 'to_size' ({size2})", reason="invalid_parameter")
        root1, root2 = log.root(size1), log.root(size2)
        proof = log.consistency_proof(size1, size2)
    return ConsistencyOut.model_validate(
        {
            "from": TreeHead(epoch=from_epoch, tree_size=size1, root=root1.hex()),
            "to": TreeHead(epoch=to_epoch, tree_size=size2, root=root2.hex()),
            "proof": [h.hex() for h in proof],
        }
    )
