"""Content-addressed store for bodies too large to travel inside a stream entry (a local folder)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import msgspec

from mirror.exchange import Body, Exchange, ResponseSide
from shadowgate.crypto import Cipher, Undecryptable, place, unseal

PLAIN = "sha256"
SEALED = "hmac-sha256"


class BlobStore:
    """Each body is written once, under its name: `sha256:<hex>` in plain, or `hmac-sha256:<hex>` (a
    keyed name) holding an AES-GCM envelope bound to that name when a cipher is given.

    Writing a body that is already there refreshes the file's time, so retention (`purge`) counts
    from the last capture that used it.
    """

    def __init__(self, root: Path, cipher: Cipher | None = None) -> None:
        self.root = root
        self.cipher = cipher

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes) -> str:
        if self.cipher is None:
            digest, scheme = hashlib.sha256(data).hexdigest(), PLAIN
        else:
            digest, scheme = self.cipher.blob_name(data), SEALED
        path = self._path(digest)
        if path.exists():
            with contextlib.suppress(FileNotFoundError):  # a purge may take it meanwhile: write it anew
                os.utime(path)
                return f"{scheme}:{digest}"
        content = data if self.cipher is None else self.cipher.seal(data, place("blob", digest))
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees half a body and two writers never clash.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return f"{scheme}:{digest}"

    def get(self, ref: str) -> bytes:
        scheme, _, digest = ref.partition(":")
        if scheme not in (PLAIN, SEALED) or len(digest) != 64:
            raise ValueError(f"not a blob reference: {ref[:80]!r}")
        data = self._path(digest).read_bytes()
        if scheme == SEALED:
            try:
                return unseal(self.cipher, data, place("blob", digest))
            except Undecryptable as exc:
                raise ValueError(f"blob {digest[:12]}… does not open: {exc}") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise ValueError(f"blob {digest[:12]}… is corrupt")
        return data

    def purge(self, older_than: float) -> int:
        """Delete the blobs (and abandoned temporary files) last written before `older_than` (unix
        seconds); returns how many files went."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for path in sorted(self.root.rglob("*"), reverse=True):  # files before their folders
            try:
                if path.is_dir():
                    if path != self.root and not any(path.iterdir()):
                        path.rmdir()
                elif path.stat().st_mtime < older_than:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
            except OSError:  # a folder that filled up again meanwhile
                continue
        return removed


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
