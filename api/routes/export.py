"""The per-epoch export files under ``/v1/export/``, byte for byte what ``assetproof export``
writes (``attestor.export``), so an auditor reads the same relative paths from a directory or
from here. Nothing here is trusted by the auditor: it recomputes every root and total."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path
from fastapi.responses import Response, StreamingResponse

from api.context import Ctx
from api.errors import ApiError, not_found
from api.models import DEPLOYMENT_UNREADABLE, Problem
from api.params import in_store_range
from api.routes import PREFIX
from attestor.export import (
    EXPORT_FILES,
    ExportError,
    epoch_dir_name,
    iter_leaves,
    json_file,
    metadata_bytes,
)

router = APIRouter(prefix=PREFIX, tags=["export (auditors)"])

_EPOCH_DIR: Final = re.compile(r"epoch-(\d{6,})")
_CHUNK_BYTES: Final = 256 * 1024
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "checkpoint.json, metadata.json and quarantine.json are JSON; leaves is the epoch's messages"
        " in log order, one per line (application/octet-stream, streamed).",
        "content": {"application/json": {}, "application/octet-stream": {}},
    },
    404: {"model": Problem, "description": "No such epoch folder or file (or the epoch is not closed)."},
    **DEPLOYMENT_UNREADABLE,
}


def _epoch_of(directory: str) -> int:
    match = _EPOCH_DIR.fullmatch(directory)
    # An epoch beyond the store's integers cannot exist: 404 here, not an overflow in the query.
    epoch = None if match is None else int(match.group(1))
    if epoch is None or not in_store_range(epoch) or epoch_dir_name(epoch) != directory:
        raise ApiError(404, f"{directory!r} is not an epoch folder (epoch-NNNNNN)", reason="not_found")
    return epoch


@router.get("/export/{directory}/{name}", summary="One file of an epoch's export", responses=RESPONSES)
def export_file(
    ctx: Ctx,
    directory: Annotated[str, Path(max_length=32, examples=["epoch-000007"])],
    name: Annotated[
        str, Path(max_length=32, description=f"The file in the epoch's folder: one of {', '.join(EXPORT_FILES)}.")
    ],
) -> Response:
    epoch = _epoch_of(directory)
    if name not in EXPORT_FILES:
        # A file tree to its readers: an unknown name is a missing file, not a bad parameter.
        raise ApiError(404, f"no file {name!r} in an epoch folder ({', '.join(EXPORT_FILES)})", reason="not_found")
    engine = ctx.reader
    try:
        if name != "leaves":
            return Response(
                json_file(engine, epoch=epoch, name=name, chain=ctx.anchors.get()), media_type="application/json"
            )
        metadata_bytes(engine, epoch=epoch)  # a missing epoch must be a 404, not a broken stream
    except ExportError:
        raise not_found(f"epoch {epoch} (not closed)") from None

    def lines() -> Iterator[bytes]:
        # Chunks of many lines: each chunk of a sync iterator costs the server a thread hop.
        chunk: list[bytes] = []
        size = 0
        for raw in iter_leaves(engine, epoch=epoch):
            chunk.append(raw + b"\n")
            size += len(raw) + 1
            if size >= _CHUNK_BYTES:
                yield b"".join(chunk)
                chunk, size = [], 0
        if chunk:
            yield b"".join(chunk)

    return StreamingResponse(lines(), media_type="application/octet-stream")
