r"""The audit log: an append-only, hash-chained record of the gate's and people's decisions.

Every entry names the entry before it by hash, so changing, inserting or deleting an entry in the
middle of the log breaks the chain at that point, and `verify` names where. An export carries every
entry with its hashes, and `verify_jsonl` / `verify_csv` check one without the database.

The chain, precisely, so that an auditor can reimplement the check in any language:

- Entries are numbered by `seq`: 1, 2, 3, ... with no gaps. Entry 1's `prev_hash` is 64 zeros
  (``GENESIS``); entry N's `prev_hash` is entry N-1's `hash`.
- `hash` is the SHA-256 of the entry's canonical serialization, written as 64 lowercase hex digits.
- The canonical serialization is the UTF-8 encoding of a JSON array of exactly these nine values,
  in this order: ``[seq, at, actor, action, tenant, route, reason, details, prev_hash]``, where
  - `seq` is a JSON integer in plain decimal (no sign, exponent or fraction);
  - `at` is a string, the UTC time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always six fractional digits,
    a literal ``Z``; e.g. ``"2025-03-03T09:00:00.000000Z"``);
  - `actor`, `action`, `reason` and `prev_hash` are strings; `tenant` and `route` are strings or
    ``null``;
  - `details` is a string: the entry's details exactly as stored and exported (itself a JSON object
    text, written with sorted keys and no whitespace, but it is hashed as the string it is and never
    re-serialized, so a verifier need not reproduce how it was made);
  - no whitespace anywhere outside strings: ``[`` then the values separated by ``,`` then ``]``;
  - strings are written as RFC 8785 (JCS) and ECMAScript's ``JSON.stringify`` write them: every
    character as itself (non-ASCII included, as UTF-8), except ``"`` as ``\"``, ``\`` as ``\\``,
    the controls U+0008, U+0009, U+000A, U+000C, U+000D as ``\b``, ``\t``, ``\n``, ``\f``, ``\r``, and
    the other controls below U+0020 as ``\u00xx`` with lowercase hex digits.

  In Python that is ``json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode("utf-8")``.
  For example, entry 1 by actor "gate", action "verdict", tenant "clinic-a", route null, reason "ok",
  details {"p95_ms": 120} at 09:00 UTC on 3 March 2025 serializes to::

      [1,"2025-03-03T09:00:00.000000Z","gate","verdict","clinic-a",null,"ok","{\"p95_ms\":120}","000...000"]

  (with the 64 zeros written out).

An export (JSON lines or CSV) holds one entry per line or row, oldest first, with the fields
``seq, at, actor, action, tenant, route, reason, details, prev_hash, hash``, `at` and `details` exactly
as serialized above. In CSV, an empty `tenant` or `route` cell means null (`append` refuses empty
names, so the two never clash).

The chain shows changes inside the log; it cannot show entries cut off the end. To catch that, record
the last `seq` and `hash` (`head`) somewhere the log's writers cannot change, such as a signed report.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Generator, Iterable, Iterator, Mapping
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, TextIO

from sqlalchemy import Connection, Engine, Index, String, Text, func, insert, select
from sqlmodel import Field, SQLModel

from store.models import table, utc_field

GENESIS = "0" * 64
FIELDS = ("seq", "at", "actor", "action", "tenant", "route", "reason", "details", "prev_hash")
COLUMNS = (*FIELDS, "hash")

# Rows fetched at a time by verify and export: a server-side cursor on PostgreSQL, so memory stays flat.
BATCH = 1000

# The PostgreSQL advisory lock that serializes appends: an advisory lock, not FOR UPDATE on the last
# row, because an empty log has no row to lock. Any fixed bigint works; this is sha256("shadowgate.audit").
APPEND_LOCK_KEY = int.from_bytes(hashlib.sha256(b"shadowgate.audit").digest()[:8], "big", signed=True)

_AT_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class AuditEntry(SQLModel, table=True):
    """One decision: who did what to which tenant and route, why, and the hashes that chain it."""

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_tenant_route_seq", "tenant", "route", "seq"),)

    # Numbered by append, never by the database, so that a gap is a deleted entry and nothing else.
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = utc_field()
    actor: str
    action: str = Field(index=True)
    tenant: str | None = None
    route: str | None = None
    reason: str = Field(sa_type=Text)
    details: str = Field(default="{}", sa_type=Text)
    prev_hash: str = Field(sa_type=String(64))
    hash: str = Field(sa_type=String(64))


AUDIT = table(AuditEntry)


class VerifyResult(NamedTuple):
    """`entries`: how many entries checked out, from seq 1, before the first bad one (all when ok)."""

    ok: bool
    entries: int
    first_bad: int | None = None
    problem: str | None = None


def iso(at: datetime) -> str:
    """`at` as the chain writes it: UTC, six fractional digits, a literal Z."""
    if at.tzinfo is None:
        raise ValueError("the audit log takes timezone-aware datetimes only")
    return at.astimezone(UTC).strftime(_AT_FORMAT)


def canonical_details(details: Mapping[str, Any] | None) -> str:
    """Details as stored and hashed: a JSON object with sorted keys, no whitespace, no NaN."""
    return json.dumps(
        dict(details or {}), sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash covers (see the module docstring); `at` is already the ISO string."""
    values = [record[name] for name in FIELDS]
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def entry_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def append(
    engine: Engine,
    *,
    actor: str,
    action: str,
    reason: str,
    tenant: str | None = None,
    route: str | None = None,
    details: Mapping[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Add an entry at the end of the log in one transaction, holding the log's lock; returns it.

    Concurrent appends, from threads or processes, queue on the lock (an advisory lock on PostgreSQL,
    BEGIN IMMEDIATE on SQLite), so each one reads the true last entry and the chain never forks;
    the primary key on `seq` refuses a fork even from a writer that skipped the lock.
    """
    for name, value in (("actor", actor), ("action", action), ("tenant", tenant), ("route", route)):
        if value == "":
            raise ValueError(f"the audit log needs a non-empty {name} (or None where allowed)")
    record: dict[str, Any] = {
        "actor": actor,
        "action": action,
        "tenant": tenant,
        "route": route,
        "reason": reason,
        "details": canonical_details(details),
    }
    # Refuse what cannot be hashed (a lone surrogate) before taking the lock, not while holding it.
    canonical({**record, "seq": 0, "at": "", "prev_hash": GENESIS})
    if at is not None:
        iso(at)

    with _locked(engine) as conn:
        last = conn.execute(select(AUDIT.c.seq, AUDIT.c.hash).order_by(AUDIT.c.seq.desc()).limit(1)).first()
        # Taken under the lock, so that entries appended without an explicit time are in time order.
        when = (at or datetime.now(UTC)).astimezone(UTC)
        record["seq"] = 1 if last is None else last.seq + 1
        record["prev_hash"] = GENESIS if last is None else last.hash
        record["at"] = iso(when)
        record["hash"] = entry_hash(record)
        conn.execute(insert(AUDIT).values({**record, "at": when}))
        conn.commit()
    return AuditEntry(**{**record, "at": when})


def head(engine: Engine) -> tuple[int, str] | None:
    """The last entry's seq and hash, to record outside the log; None while the log is empty."""
    with engine.connect() as conn:
        last = conn.execute(select(AUDIT.c.seq, AUDIT.c.hash).order_by(AUDIT.c.seq.desc()).limit(1)).first()
    return None if last is None else (last.seq, last.hash)


def verify(engine: Engine) -> VerifyResult:
    """Walk the log in seq order, recomputing every hash and link; names the first bad entry."""
    # Closed at once, not when collected: a check that stops early leaves a server-side cursor open.
    with closing(_records(engine)) as records:
        return check_chain(records)


def verify_jsonl(lines: Iterable[str]) -> VerifyResult:
    """Verify an export written by `export(..., "jsonl")`, without the database."""
    return check_chain(_parsed_jsonl(lines))


def verify_csv(lines: Iterable[str]) -> VerifyResult:
    """Verify an export written by `export(..., "csv")`, without the database.

    Pass the file opened with ``newline=""`` (as the csv module asks), so line breaks inside a reason
    or details survive as written.
    """
    return check_chain(_parsed_csv(lines))


def check_chain(records: Iterable[Mapping[str, Any]]) -> VerifyResult:
    """The chain check itself, over records in file or seq order with `at` as its ISO string."""
    expected, prev, good = 1, GENESIS, 0
    try:
        for record in records:
            seq = record["seq"]
            if seq > expected:
                return VerifyResult(False, good, expected, f"missing entry before seq {seq}")
            if seq < expected:
                return VerifyResult(False, good, expected, f"seq {seq} out of order (expected {expected})")
            if entry_hash(record) != record["hash"]:
                return VerifyResult(False, good, seq, "hash mismatch")
            if record["prev_hash"] != prev:
                return VerifyResult(False, good, seq, "broken link")
            expected, prev, good = expected + 1, record["hash"], good + 1
    except _Unreadable as exc:
        return VerifyResult(False, good, expected, str(exc))
    return VerifyResult(True, good)


def export(engine: Engine, out: TextIO, fmt: Literal["jsonl", "csv"]) -> int:
    """Write every entry with its hashes to `out`, oldest first; returns how many it wrote."""
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown export format {fmt!r}")
    writer = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="raise") if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    written = 0
    for record in _records(engine):
        if writer is not None:
            writer.writerow({k: "" if v is None else v for k, v in record.items()})
        else:
            # ASCII only: no character in a line can be taken for a line break, whatever splits it.
            out.write(json.dumps(record) + "\n")
        written += 1
    return written


def entries(
    engine: Engine,
    *,
    tenant: str | None = None,
    route: str | None = None,
    action: str | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """The latest entries, newest first, optionally for one tenant, route or action."""
    stmt = select(AUDIT).order_by(AUDIT.c.seq.desc()).limit(limit)
    for column, value in ((AUDIT.c.tenant, tenant), (AUDIT.c.route, route), (AUDIT.c.action, action)):
        if value is not None:
            stmt = stmt.where(column == value)
    with engine.connect() as conn:
        return [AuditEntry(**row) for row in conn.execute(stmt).mappings()]


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the log's append lock until it commits or closes."""
    with engine.connect() as conn:  # closing rolls back whatever was not committed, releasing the lock
        if conn.dialect.name == "sqlite":
            # A deferred transaction would read, then fail to upgrade to a writer without waiting;
            # IMMEDIATE takes the write lock first, waiting out other writers (busy_timeout).
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            # READ COMMITTED, so the read after the lock sees the entry its previous holder committed.
            conn.execution_options(isolation_level="READ COMMITTED")
            conn.execute(select(func.pg_advisory_xact_lock(APPEND_LOCK_KEY)))
        else:
            raise NotImplementedError(f"the audit log has no append lock for {conn.dialect.name}")
        yield conn


class _Unreadable(Exception):
    """A line of an export that is not an audit entry."""


def _records(engine: Engine) -> Generator[dict[str, Any]]:
    stmt = select(*(AUDIT.c[name] for name in COLUMNS)).order_by(AUDIT.c.seq)
    # The result is closed explicitly too: closing the connection alone leaves psycopg's cursor open.
    with (
        engine.connect() as conn,
        conn.execution_options(stream_results=True, yield_per=BATCH).execute(stmt) as result,
    ):
        for row in result.mappings():
            yield {**row, "at": iso(row["at"])}


def _parsed_jsonl(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise _Unreadable(f"line {number}: not JSON ({exc})") from None
        yield _checked(record, number)


def _parsed_csv(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    reader = csv.DictReader(lines)
    if reader.fieldnames is None or tuple(reader.fieldnames) != COLUMNS:
        raise _Unreadable(f"line 1: the header is not {','.join(COLUMNS)}")
    for row in reader:
        record: dict[str, Any] = {
            k: None if k in ("tenant", "route") and v == "" else v for k, v in row.items()
        }
        seq = record["seq"]
        if isinstance(seq, str) and seq.isascii() and seq.isdigit():
            record["seq"] = int(seq)
        yield _checked(record, reader.line_num)


def _checked(record: Any, number: int) -> dict[str, Any]:
    """The record if its fields have the chain's types, else _Unreadable naming the line."""
    if not isinstance(record, dict) or set(record) != set(COLUMNS):
        raise _Unreadable(f"line {number}: not an audit entry (needs exactly {', '.join(COLUMNS)})")
    seq = record["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise _Unreadable(f"line {number}: seq is not a positive integer")
    for name in COLUMNS[1:]:
        value = record[name]
        if not (isinstance(value, str) or (value is None and name in ("tenant", "route"))):
            raise _Unreadable(f"line {number}: {name} is not a string")
    return record
