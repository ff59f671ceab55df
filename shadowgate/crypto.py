"""Encryption at rest of clinical payloads: AES-256-GCM envelopes that name their key and their place.

An envelope is `MAGIC, version, key id, salt, nonce, ciphertext+tag` (binary; `TEXT_PREFIX` + base64
of it in text columns). The key that seals it is derived from the configured key named by the key id
and a random salt chosen once per process (HKDF-SHA256), so the 2^32-messages bound of random 96-bit
GCM nonces applies per process and per 2^30 messages, never to a long-lived key as a whole. The
associated data (`place(...)`) names where the ciphertext lives — an entry's request id and stream
fields, a payload row's pair key and column, a blob's name — so a ciphertext moved elsewhere does not
open. Rotation: add a key, make it active; older keys stay configured for reading until their data
is gone (purged, or aged out of the streams).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

if TYPE_CHECKING:
    from shadowgate.settings import Encryption

MAGIC = b"\x00SGE"  # never the start of a MessagePack map, of JSON, or of a multipart body
VERSION = 1
TEXT_PREFIX = "sgenc1:"
KEY_BYTES = 32
_SALT = 16
_NONCE = 12
# Messages sealed under one derived key before a fresh salt is drawn: far below the 2^32 bound.
_MAX_USES = 1 << 30
_INFO = b"shadowgate payload key v1"
_BLOB_NAME_INFO = b"shadowgate blob names v1"


class CryptoError(Exception):
    """A payload that cannot be opened; the message names why, never the data."""


class MissingKey(CryptoError):
    """Sealed with a key this process does not have: a configuration problem, not bad data."""

    def __init__(self, key_id: str, *, configured: bool = True) -> None:
        self.key_id = key_id
        where = (
            "which is not among the configured encryption keys"
            if configured
            else "but no encryption keys are configured"
        )
        super().__init__(
            f"payload is encrypted with key id {key_id!r}, {where} (SHADOWGATE_ENCRYPTION__KEYS)"
        )


class Undecryptable(CryptoError):
    """Altered, truncated, or moved from the place it was sealed for."""


def generate_key() -> str:
    """A new random 256-bit key, base64, for `encryption.keys` (`shadowgate keygen`)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def decode_key(text: str) -> bytes:
    """A configured key's bytes; ValueError unless it is the base64 of exactly 32 bytes."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise ValueError("an encryption key must be the base64 of 32 random bytes (see shadowgate keygen)")
    return key


def place(*parts: str | int | None) -> bytes:
    """The associated data for a ciphertext: where it lives, encoded without ambiguity."""
    return msgspec.msgpack.encode(parts)


def _derive(key: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=info).derive(key)


class Cipher:
    """Seals with the active key, opens with any configured key. Safe to share between threads."""

    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
        if active_key_id not in keys:
            raise ValueError(f"the active key id {active_key_id!r} is not among the keys")
        for key_id, key in keys.items():
            if not 0 < len(key_id.encode()) < 256 or len(key) != KEY_BYTES:
                raise ValueError(f"key {key_id!r}: ids are 1-255 bytes, keys 32 bytes")
        self._keys = dict(keys)
        self.active_key_id = active_key_id
        self._lock = threading.Lock()
        self._readers: dict[tuple[str, bytes], AESGCM] = {}
        self._blob_name_key = _derive(self._keys[active_key_id], b"", _BLOB_NAME_INFO)
        self._fresh()

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def _fresh(self) -> None:
        salt = os.urandom(_SALT)
        key_id = self.active_key_id.encode()
        header = MAGIC + bytes([VERSION, len(key_id)]) + key_id + salt
        # One tuple, replaced whole, so a thread never pairs one salt's header with another's key.
        self._current = (header, AESGCM(_derive(self._keys[self.active_key_id], salt, _INFO)))
        self._uses = 0

    def seal(self, data: bytes, aad: bytes) -> bytes:
        """An envelope of `data` for the place `aad` names."""
        self._uses += 1
        if self._uses > _MAX_USES:
            with self._lock:
                if self._uses > _MAX_USES:
                    self._fresh()
        header, aead = self._current
        nonce = os.urandom(_NONCE)
        return header + nonce + aead.encrypt(nonce, data, aad)

    def open(self, envelope: bytes, aad: bytes) -> bytes:
        """The data sealed in `envelope` for the place `aad`; MissingKey or Undecryptable otherwise."""
        key_id, salt, body = _parse(envelope)
        aead = self._reader(key_id, salt)
        nonce, ciphertext = body[:_NONCE], body[_NONCE:]
        try:
            return aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise Undecryptable(
                f"a payload sealed with key {key_id!r} does not open here: altered, or moved from its place"
            ) from None

    def _reader(self, key_id: str, salt: bytes) -> AESGCM:
        found = self._readers.get((key_id, salt))
        if found is not None:
            return found
        key = self._keys.get(key_id)
        if key is None:
            raise MissingKey(key_id)
        aead = AESGCM(_derive(key, salt, _INFO))
        with self._lock:
            if len(self._readers) >= 1024:  # one salt per process that wrote: a small set in practice
                self._readers.clear()
            self._readers[(key_id, salt)] = aead
        return aead

    def seal_text(self, text: str, aad: bytes) -> str:
        return TEXT_PREFIX + base64.b64encode(self.seal(text.encode(), aad)).decode("ascii")

    def blob_name(self, data: bytes) -> str:
        """A keyed name for a sealed blob: equal bodies share a file, and the name reveals nothing
        (a plain SHA-256 would let anyone holding a guess confirm it from the file name)."""
        return hmac.new(self._blob_name_key, data, hashlib.sha256).hexdigest()


def _parse(envelope: bytes) -> tuple[str, bytes, bytes]:
    if not envelope.startswith(MAGIC) or len(envelope) < len(MAGIC) + 2:
        raise Undecryptable("not an encrypted payload")
    version, id_len = envelope[len(MAGIC)], envelope[len(MAGIC) + 1]
    if version != VERSION:
        raise Undecryptable(f"unknown envelope version {version}")
    start = len(MAGIC) + 2
    key_id = envelope[start : start + id_len].decode(errors="replace")
    salt = envelope[start + id_len : start + id_len + _SALT]
    body = envelope[start + id_len + _SALT :]
    if len(salt) != _SALT or len(body) < _NONCE + 16:
        raise Undecryptable("a truncated encrypted payload")
    return key_id, salt, body


def sealed(data: bytes) -> bool:
    return data.startswith(MAGIC)


def key_id_of(envelope: bytes) -> str:
    return _parse(envelope)[0]


def seal(cipher: Cipher | None, data: bytes, aad: bytes) -> bytes:
    """`data` sealed when encryption is on; as it is when it is off."""
    return data if cipher is None else cipher.seal(data, aad)


def unseal(cipher: Cipher | None, data: bytes, aad: bytes) -> bytes:
    """Plain data as it is (written before encryption was turned on); sealed data opened."""
    if not sealed(data):
        return data
    if cipher is None:
        raise MissingKey(key_id_of(data), configured=False)
    return cipher.open(data, aad)


def seal_text(cipher: Cipher | None, text: str | None, aad: bytes) -> str | None:
    return text if cipher is None or text is None else cipher.seal_text(text, aad)


def unseal_text(cipher: Cipher | None, text: str | None, aad: bytes) -> str | None:
    if text is None or not text.startswith(TEXT_PREFIX):
        return text
    try:
        envelope = base64.b64decode(text[len(TEXT_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise Undecryptable("an encrypted text that is not valid base64") from None
    return unseal(cipher, envelope, aad).decode()


def cipher_from(encryption: Encryption) -> Cipher | None:
    """The cipher the settings describe; None when no key is configured (payloads stay plain)."""
    if not encryption.keys:
        return None
    keys = {key_id: decode_key(secret.get_secret_value()) for key_id, secret in encryption.keys.items()}
    return Cipher(keys, encryption.active)
