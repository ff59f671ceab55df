"""Content-addressed store for bodies too large to travel inside a stream entry (a local folder)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


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
