"""Clinical content in the store: sealed on its way into the payloads and findings tables, and the one
door that reads it back out (opened with the settings' cipher)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, select

from comparators.scoring import Finding
from shadowgate.crypto import Cipher, place, seal, seal_text, unseal, unseal_text
from store.models import FINDINGS, PAYLOADS
from store.records import Payload

TEXT_COLUMNS = ("primary_text", "candidate_text", "secondary_text")
EXCERPT_COLUMNS = ("primary_excerpt", "other_excerpt")


def payload_place(pair_key: str, column: str) -> bytes:
    """Where a payload cell lives: a sealed cell copied to another pair or column does not open."""
    return place("payloads", pair_key, column)


def finding_place(row: Mapping[str, Any], column: str) -> bytes:
    return place("findings", row["pair_key"], row["role"], row["kind"], row["where"], column)


def sealed_payload_row(row: dict[str, Any], cipher: Cipher | None) -> dict[str, Any]:
    """A payloads row (pair_key, request, the texts) with its clinical cells sealed."""
    if cipher is None:
        return row
    key = row["pair_key"]
    out = {**row, "request": seal(cipher, row["request"], payload_place(key, "request"))}
    for column in TEXT_COLUMNS:
        out[column] = seal_text(cipher, row[column], payload_place(key, column))
    return out


def sealed_finding_row(row: dict[str, Any], cipher: Cipher | None) -> dict[str, Any]:
    """A findings row with its excerpts (short quotes of clinical text) sealed."""
    if cipher is None:
        return row
    return {**row, **{c: seal_text(cipher, row[c], finding_place(row, c)) for c in EXCERPT_COLUMNS}}


def opened_payload(row: Mapping[str, Any], cipher: Cipher | None) -> Payload:
    """A payloads row as clear content. Rows written before encryption was on are read as they are;
    a sealed cell without its key raises MissingKey, naming the key id."""
    key = row["pair_key"]
    texts = {c: unseal_text(cipher, row[c], payload_place(key, c)) for c in TEXT_COLUMNS}
    return Payload(
        request=unseal(cipher, bytes(row["request"]), payload_place(key, "request")),
        primary=texts["primary_text"],
        candidate=texts["candidate_text"],
        secondary=texts["secondary_text"],
    )


def load_payload(engine: Engine, pair_key: str, cipher: Cipher | None) -> Payload | None:
    """The request and the answers' text of one pair, or None when it has none (or was purged).

    `cipher` is `shadowgate.crypto.cipher_from(settings.encryption)`: None when encryption is off.
    """
    with engine.connect() as conn:
        row = conn.execute(select(PAYLOADS).where(PAYLOADS.c.pair_key == pair_key)).mappings().first()
    if row is None:
        return None
    return opened_payload(dict(row), cipher)


def load_findings(engine: Engine, pair_key: str, cipher: Cipher | None) -> list[tuple[str, Finding]]:
    """The findings of one pair as (role, Finding), excerpts opened, in the order they were found."""
    with engine.connect() as conn:
        rows = (
            conn.execute(select(FINDINGS).where(FINDINGS.c.pair_key == pair_key).order_by(FINDINGS.c.id))
            .mappings()
            .all()
        )
    out = []
    for found in rows:
        row = dict(found)
        primary, other = (unseal_text(cipher, row[c], finding_place(row, c)) for c in EXCERPT_COLUMNS)
        out.append((row["role"], Finding(row["kind"], row["where"], primary or "", other or "")))
    return out
