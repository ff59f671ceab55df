"""Header rules of the tap and the content-addressed blob store."""

from __future__ import annotations

from pathlib import Path

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from mirror.blobs import BlobStore
from mirror.headers import REDACTED, client_response_headers, sanitize, upstream_request_headers


def proxy(*items: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(items))


def test_hop_by_hop_and_connection_listed_headers_are_dropped() -> None:
    got = upstream_request_headers(
        proxy(
            ("Host", "tap.local"),
            ("Connection", "keep-alive, X-Trace-Hop"),
            ("X-Trace-Hop", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Authorization", "Bearer sk-1"),
            ("X-Tenant-ID", "klinik-a"),
            ("Accept", "a"),
            ("Accept", "b"),
        )
    )
    assert list(got.items()) == [
        ("Authorization", "Bearer sk-1"),  # the primary still needs the client's credentials
        ("X-Tenant-ID", "klinik-a"),
        ("Accept", "a"),
        ("Accept", "b"),
    ]


def test_response_headers_keep_repeats_and_drop_framing() -> None:
    got = client_response_headers(
        proxy(("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Content-Length", "5"), ("Keep-Alive", "x"))
    )
    assert got.getall("Set-Cookie") == ["a=1", "b=2"]
    assert "Content-Length" not in got
    assert "Keep-Alive" not in got


def test_sanitize_redacts_secrets_whatever_their_case() -> None:
    secret = frozenset({"authorization", "x-api-key"})
    got = sanitize([("authorization", "Bearer sk"), ("X-API-KEY", "k"), ("X-Tenant-ID", "t")], secret)
    assert got == [("authorization", REDACTED), ("X-API-KEY", REDACTED), ("X-Tenant-ID", "t")]


def test_blob_store_is_content_addressed_and_detects_corruption(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    data = b"RIFF....WAVE synthetic audio" * 1000
    ref = store.put(data)
    assert ref == store.put(data)  # written once
    assert store.get(ref) == data
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 1
    files[0].write_bytes(b"tampered")
    with pytest.raises(ValueError, match="corrupt"):
        store.get(ref)
    with pytest.raises(ValueError, match="not a blob reference"):
        store.get("md5:abc")


def test_public_query_drops_credential_parameters_and_keeps_the_rest_byte_for_byte() -> None:
    from mirror.headers import public_query

    assert public_query("") == ""
    assert public_query("api-version=2024-06-01&api-key=s3cret") == "api-version=2024-06-01"
    assert public_query("KEY=a&b=%20x&access_token=t&api%2Dkey=z&token") == "b=%20x"
    assert public_query("keys=1&monkey=2") == "keys=1&monkey=2"
