"""Encryption at rest: envelopes name their key, open only in their place, survive rotation, and fail
with a sentence that names the missing key; the entry codec and the blob store use them."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from pathlib import Path

import msgspec
import pytest
from pydantic import SecretStr, ValidationError

import shadowgate.crypto as crypto
from mirror.blobs import BlobStore
from mirror.exchange import (
    Body,
    Exchange,
    MalformedEntry,
    RequestSide,
    ResponseSide,
    decode_entry,
    encode_entry,
)
from shadowgate.crypto import (
    TEXT_PREFIX,
    Cipher,
    MissingKey,
    Undecryptable,
    cipher_from,
    decode_key,
    generate_key,
    key_id_of,
    place,
    sealed,
    unseal,
    unseal_text,
)
from shadowgate.settings import Encryption, Settings

KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))
SECRET = b"Pesakit menafikan sakit dada; Paracetamol 500 mg"


def test_a_sealed_payload_names_its_key_and_opens_only_in_its_place() -> None:
    cipher = Cipher({"2026a": KEY_A}, "2026a")
    here = place("payloads", "1-0", "request")
    one, two = cipher.seal(SECRET, here), cipher.seal(SECRET, here)
    assert sealed(one)
    assert key_id_of(one) == "2026a"
    assert SECRET not in one
    assert one != two  # a fresh nonce each time
    assert cipher.open(one, here) == cipher.open(two, here) == SECRET
    with pytest.raises(Undecryptable):
        cipher.open(one, place("payloads", "2-0", "request"))  # moved to another pair
    with pytest.raises(Undecryptable):
        cipher.open(one, place("payloads", "1-0", "primary_text"))  # moved to another column
    tampered = bytearray(one)
    tampered[-20] ^= 1
    with pytest.raises(Undecryptable):
        cipher.open(bytes(tampered), here)
    with pytest.raises(Undecryptable):
        cipher.open(one[:30], here)


def test_rotation_keeps_old_payloads_readable_and_a_missing_key_is_named() -> None:
    here = place("x")
    old = Cipher({"2026a": KEY_A}, "2026a").seal(SECRET, here)
    rotated = Cipher({"2026a": KEY_A, "2026b": KEY_B}, "2026b")
    new = rotated.seal(SECRET, here)
    assert key_id_of(new) == "2026b"
    assert rotated.open(old, here) == rotated.open(new, here) == SECRET

    only_new = Cipher({"2026b": KEY_B}, "2026b")
    with pytest.raises(MissingKey, match="'2026a'") as caught:
        only_new.open(old, here)
    assert caught.value.key_id == "2026a"
    with pytest.raises(MissingKey, match="no encryption keys are configured"):
        unseal(None, old, here)
    # The same id with other key bytes is not the key: the payload does not open.
    with pytest.raises(Undecryptable):
        Cipher({"2026a": KEY_B}, "2026a").open(old, here)


def test_each_process_seals_under_its_own_derived_key_and_renews_it(monkeypatch: pytest.MonkeyPatch) -> None:
    here = place("x")
    first, second = Cipher({"k": KEY_A}, "k"), Cipher({"k": KEY_A}, "k")
    a, b = first.seal(SECRET, here), second.seal(SECRET, here)
    header = len(crypto.MAGIC) + 2 + 1
    assert a[header : header + 16] != b[header : header + 16]  # another salt, so another AES key
    assert second.open(a, here) == first.open(b, here) == SECRET

    monkeypatch.setattr(crypto, "_MAX_USES", 3)
    sealed_ = [first.seal(str(i).encode(), here) for i in range(10)]
    salts = {s[header : header + 16] for s in sealed_}
    assert len(salts) >= 3  # renewed every 3 messages
    assert [first.open(s, here) for s in sealed_] == [str(i).encode() for i in range(10)]


def test_plain_data_passes_through_and_text_cells_are_ascii() -> None:
    cipher = Cipher({"k": KEY_A}, "k")
    assert unseal(cipher, b'{"plain": 1}', place("x")) == b'{"plain": 1}'
    text = cipher.seal_text("tiada demam ✓", place("t"))
    assert text.startswith(TEXT_PREFIX)
    assert text.isascii()
    assert "demam" not in text
    assert unseal_text(cipher, text, place("t")) == "tiada demam ✓"
    assert unseal_text(cipher, "written before encryption", place("t")) == "written before encryption"
    assert unseal_text(cipher, None, place("t")) is None


def test_keys_are_256_bit_base64_and_keygen_makes_them() -> None:
    key = generate_key()
    assert len(base64.b64decode(key)) == 32
    assert decode_key(key) == base64.b64decode(key)
    assert generate_key() != key
    for bad in ("", "not base64!", base64.b64encode(b"short").decode(), base64.b64encode(bytes(33)).decode()):
        with pytest.raises(ValueError, match="32 random bytes"):
            decode_key(bad)


def test_encryption_settings_are_checked_at_start() -> None:
    key = base64.b64encode(KEY_A).decode()
    enc = Encryption(keys={"2026a": SecretStr(key)}, required=True)
    assert enc.active == "2026a"
    cipher = cipher_from(enc)
    assert cipher is not None
    assert cipher.active_key_id == "2026a"
    assert cipher_from(Encryption()) is None
    assert cipher_from(Settings().encryption) is None  # the embedded demo's defaults: plain, as before
    assert key not in repr(Settings(encryption=enc))
    assert key not in str(enc)

    cases = [
        ({"required": True}, "encryption is required but no key is set"),
        ({"keys": {"k": "c2hvcnQ="}}, "encryption key 'k' must be the base64 of 32 random bytes"),
        ({"keys": {"a": key, "b": key}}, "active_key_id must name the key"),
        ({"keys": {"a": key}, "active_key_id": "b"}, "names none of the configured keys"),
        ({"keys": {"bad id!": key}}, "key id 'bad id!'"),
    ]
    for given, sentence in cases:
        with pytest.raises(ValidationError, match=sentence) as caught:
            Encryption(**given)  # type: ignore[arg-type]
        message = " ".join(e["msg"] for e in caught.value.errors())
        assert key not in message
        assert "c2hvcnQ=" not in message


def exchange(replay: str | None = None) -> Exchange:
    return Exchange(
        id="req-7",
        tenant="klinik-a",
        route="chat",
        route_prefix="/v1/chat/completions",
        captured_at=1_790_000_000.25,
        request=RequestSide("POST", "/v1/chat/completions", "", [], Body(size=len(SECRET), data=SECRET)),
        primary=ResponseSide(
            role="primary",
            status=200,
            headers=[],
            body=Body(size=len(SECRET), data=SECRET),
            started_at=1_790_000_000.0,
            headers_ms=1.0,
            ttfb_ms=1.0,
            total_ms=2.0,
            text="tiada demam",
        ),
        replay=replay,
    )


def as_read(fields: dict[str, bytes | str | int]) -> dict[bytes, bytes]:
    """Fields as Redis hands them back."""
    return {k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()}


def test_stream_entries_are_sealed_and_bound_to_their_clear_fields() -> None:
    cipher = Cipher({"k1": KEY_A}, "k1")
    x = exchange()
    fields = as_read(encode_entry(x, cipher))
    assert set(fields) == {b"v", b"id", b"tenant", b"route", b"ts", b"data"}
    assert fields[b"tenant"] == b"klinik-a"  # still filterable in clear
    assert SECRET not in fields[b"data"]
    assert b"tiada demam" not in fields[b"data"]
    assert decode_entry(fields, cipher) == x
    with pytest.raises(MissingKey, match="'k1'"):
        decode_entry(fields)  # a process without keys: not malformed, it lacks the key
    with pytest.raises(MissingKey):
        decode_entry(fields, Cipher({"k2": KEY_B}, "k2"))

    for field, value in ((b"tenant", b"klinik-b"), (b"id", b"req-8"), (b"ts", b"1"), (b"route", b"audio")):
        with pytest.raises(MalformedEntry, match="does not open"):
            decode_entry({**fields, field: value}, cipher)
    other = as_read(encode_entry(msgspec.structs.replace(x, id="req-8"), cipher))
    with pytest.raises(MalformedEntry):
        decode_entry({**other, b"data": fields[b"data"]}, cipher)  # a record moved to another entry

    replayed = as_read(encode_entry(exchange(replay="replay-1"), cipher))
    assert decode_entry(replayed, cipher).replay == "replay-1"
    stripped = {k: v for k, v in replayed.items() if k != b"replay"}
    with pytest.raises(MalformedEntry):
        decode_entry(stripped, cipher)  # a replayed pair cannot pass for live traffic
    # Plain entries (written before encryption was on) still read.
    assert decode_entry(as_read(encode_entry(x)), cipher) == x


def test_blobs_are_sealed_under_keyed_names(tmp_path: Path) -> None:
    cipher = Cipher({"k1": KEY_A}, "k1")
    blobs = BlobStore(tmp_path, cipher)
    audio = os.urandom(100_000) + SECRET
    ref = blobs.put(audio)
    scheme, _, name = ref.partition(":")
    assert scheme == "hmac-sha256"
    assert name != hashlib.sha256(audio).hexdigest()  # the file name confirms no guess
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 1
    assert files[0].name == name
    assert SECRET not in files[0].read_bytes()
    assert blobs.get(ref) == audio
    assert BlobStore(tmp_path, Cipher({"k1": KEY_A, "k2": KEY_B}, "k2")).get(ref) == audio
    with pytest.raises(MissingKey, match="'k1'"):
        BlobStore(tmp_path).get(ref)

    other_ref = blobs.put(b"another body")
    other_path = next(p for p in tmp_path.rglob(other_ref.partition(":")[2]))
    other_path.write_bytes(files[0].read_bytes())  # a sealed body swapped into another name
    with pytest.raises(ValueError, match="does not open"):
        blobs.get(other_ref)


def test_writing_a_blob_again_refreshes_its_time_and_purge_takes_only_old_ones(tmp_path: Path) -> None:
    for cipher in (None, Cipher({"k1": KEY_A}, "k1")):
        root = tmp_path / ("plain" if cipher is None else "sealed")
        blobs = BlobStore(root, cipher)
        old_ref, kept_ref, fresh_ref = blobs.put(b"old body"), blobs.put(b"kept body"), blobs.put(b"new")
        month_ago = time.time() - 40 * 86_400
        for ref in (old_ref, kept_ref):
            path = next(root.rglob(ref.partition(":")[2]))
            os.utime(path, (month_ago, month_ago))
        (root / "ab").mkdir()
        assert blobs.put(b"kept body") == kept_ref  # captured again today: its clock restarts
        assert blobs.purge(time.time() - 30 * 86_400) == 1
        with pytest.raises(FileNotFoundError):
            blobs.get(old_ref)
        assert blobs.get(kept_ref) == b"kept body"
        assert blobs.get(fresh_ref) == b"new"
        assert not (root / "ab").exists()  # empty folders go too


def test_every_writer_and_reader_of_payloads_is_handed_the_cipher() -> None:
    """A stream entry or a blob written without the cipher would be plain at rest: every call of the
    codec and every blob store in the packages passes one (None when encryption is off)."""
    import ast

    root = Path(__file__).resolve().parents[2]
    missing = []
    for package in ("shadowgate", "mirror", "comparators", "store", "gate", "dashboard", "simulator"):
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                given = len(node.args) + len(node.keywords)
                # Purging deletes blob files by age and reads none: it needs no key.
                purging = name == "BlobStore" and path.name == "retention.py"
                if name in ("encode_entry", "decode_entry", "BlobStore") and given < 2 and not purging:
                    missing.append(f"{path.relative_to(root)}:{node.lineno} {name}")
    assert missing == []
