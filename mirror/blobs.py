"""Content-addressed store for bodies too large to travel inside a stream entry (a local folder)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path

import msgspec

from mirror.exchange import Body, Exchange, ResponseSide


class BlobStore:
    """Each body is written once, under its SHA-256; the reference is `sha256:<hex>`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a reader never sees half a body and two writers never clash.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return f"sha256:{digest}"

    def get(self, ref: str) -> bytes:
        scheme, _, digest = ref.partition(":")
        if scheme != "sha256" or len(digest) != 64:
            raise ValueError(f"not a blob reference: {ref[:80]!r}")
        data = self._path(digest).read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(f"blob {digest[:12]}… is corrupt")
        return data


async def offload_bodies(exchange: Exchange, blobs: BlobStore, inline_limit: int) -> Exchange:
    """The exchange with every body above `inline_limit` moved to the blob store (written off the loop)."""

    async def moved(body: Body) -> Body:
        if body.data is None or body.size <= inline_limit:
            return body
        ref = await asyncio.to_thread(blobs.put, body.data)
        return Body(size=body.size, ref=ref)

    async def side(s: ResponseSide | None) -> ResponseSide | None:
        if s is None:
            return None
        body = await moved(s.body)
        return s if body is s.body else msgspec.structs.replace(s, body=body)

    request_body = await moved(exchange.request.body)
    request = (
        exchange.request
        if request_body is exchange.request.body
        else msgspec.structs.replace(exchange.request, body=request_body)
    )
    primary = await side(exchange.primary)
    assert primary is not None
    candidate = await side(exchange.candidate)
    secondary = await side(exchange.secondary)
    if (request, primary, candidate, secondary) == (
        exchange.request,
        exchange.primary,
        exchange.candidate,
        exchange.secondary,
    ):
        return exchange
    return msgspec.structs.replace(
        exchange, request=request, primary=primary, candidate=candidate, secondary=secondary
    )


async def body_bytes(body: Body, blobs: BlobStore) -> bytes:
    """A body's bytes, from the entry or from the blob store."""
    if body.data is not None:
        return body.data
    if body.ref is None:
        return b""
    return await asyncio.to_thread(blobs.get, body.ref)
