"""The audit log on SQLite and PostgreSQL: the chain, tampering found and named, concurrency, exports."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, delete, func, select, update

from store.audit import (
    AUDIT,
    GENESIS,
    VerifyResult,
    append,
    canonical,
    entries,
    entry_hash,
    export,
    head,
    iso,
    verify,
    verify_csv,
    verify_jsonl,
)
from store.db import make_engine

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def fill(engine: Engine, n: int) -> None:
    """n entries of mixed kinds, a minute apart, some with odd text the serialization must keep."""
    for i in range(n):
        append(
            engine,
            actor="gate" if i % 2 == 0 else "dr.aminah@klinik.my",
            action=("verdict", "approve", "hold", "cutover", "rollback")[i % 5],
            reason=f"entry {i + 1}: p95 within 10%\n«ok» — 好",
            tenant=None if i % 3 == 0 else f"clinic-{i % 2}",
            route=None if i % 4 == 0 else "chat",
            details={"i": i, "p95_ms": 120.5 + i, "nested": {"b": [1, None, True], "a": "x\u0001\u2028"}},
            at=T0 + timedelta(minutes=i),
        )


def test_append_builds_the_chain_and_verify_accepts_it(store_engine: Engine) -> None:
    assert verify(store_engine) == VerifyResult(True, 0)
    assert head(store_engine) is None

    first = append(store_engine, actor="gate", action="verdict", reason="ok", tenant="clinic-a", at=T0)
    assert (first.seq, first.prev_hash) == (1, GENESIS)
    fill(store_engine, 9)

    assert verify(store_engine) == VerifyResult(True, 10)
    with store_engine.connect() as conn:
        rows = conn.execute(select(AUDIT).order_by(AUDIT.c.seq)).mappings().all()
    assert [r["seq"] for r in rows] == list(range(1, 11))
    assert all(r["prev_hash"] == p["hash"] for p, r in itertools.pairwise(rows))
    assert rows[0]["hash"] == first.hash
    assert rows[0]["at"] == T0
    assert rows[0]["at"].tzinfo is not None
    assert json.loads(rows[1]["details"])["nested"]["b"] == [1, None, True]
    assert head(store_engine) == (10, rows[-1]["hash"])


def test_the_documented_example_hashes_as_documented() -> None:
    record = {
        "seq": 1,
        "at": iso(datetime(2025, 3, 3, 17, 0, tzinfo=timezone(timedelta(hours=8)))),
        "actor": "gate",
        "action": "verdict",
        "tenant": "clinic-a",
        "route": None,
        "reason": "ok",
        "details": '{"p95_ms":120}',
        "prev_hash": GENESIS,
    }
    expected = (
        '[1,"2025-03-03T09:00:00.000000Z","gate","verdict","clinic-a",null,"ok","{\\"p95_ms\\":120}","'
        + "0" * 64
        + '"]'
    ).encode()
    assert canonical(record) == expected
    assert entry_hash(record) == hashlib.sha256(expected).hexdigest()
    # Strings as RFC 8785 writes them: non-ASCII as itself, short escapes, other controls as lowercase \u00xx.
    odd = canonical({**record, "reason": 'é"\\\n\t\x1f\x7f\u2028'})
    assert '"é\\"\\\\\\n\\t\\u001f\x7f\u2028"'.encode() in odd


def test_append_takes_only_what_it_can_chain(store_engine: Engine) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        append(store_engine, actor="gate", action="verdict", reason="x", at=datetime(2025, 3, 3))
    with pytest.raises(ValueError, match="tenant"):
        append(store_engine, actor="gate", action="verdict", reason="x", tenant="")
    with pytest.raises(ValueError, match=r"NaN|Out of range"):
        append(store_engine, actor="gate", action="verdict", reason="x", details={"p": float("nan")})
    with pytest.raises(TypeError):
        append(store_engine, actor="gate", action="verdict", reason="x", details={"at": T0})
    with pytest.raises(UnicodeEncodeError):
        append(store_engine, actor="gate", action="verdict", reason="\ud800")
    assert verify(store_engine) == VerifyResult(True, 0)
    assert append(store_engine, actor="gate", action="verdict", reason="x").seq == 1


@pytest.mark.parametrize(
    ("column", "value"),
    [("reason", "approved by the board"), ("details", '{"p95_ms":1}'), ("actor", "someone-else")],
)
def test_an_edited_entry_is_a_hash_mismatch(store_engine: Engine, column: str, value: str) -> None:
    fill(store_engine, 6)
    with store_engine.begin() as conn:
        conn.execute(update(AUDIT).where(AUDIT.c.seq == 3).values({column: value}))
    assert verify(store_engine) == VerifyResult(False, 2, 3, "hash mismatch")


def test_an_edited_time_is_a_hash_mismatch(store_engine: Engine) -> None:
    fill(store_engine, 4)
    with store_engine.begin() as conn:
        conn.execute(update(AUDIT).where(AUDIT.c.seq == 4).values(at=T0 - timedelta(days=1)))
    assert verify(store_engine) == VerifyResult(False, 3, 4, "hash mismatch")


def test_a_deleted_entry_is_a_gap(store_engine: Engine) -> None:
    fill(store_engine, 8)
    with store_engine.begin() as conn:
        conn.execute(delete(AUDIT).where(AUDIT.c.seq == 5))
    assert verify(store_engine) == VerifyResult(False, 4, 5, "missing entry before seq 6")

    with store_engine.begin() as conn:
        conn.execute(delete(AUDIT).where(AUDIT.c.seq == 1))
    assert verify(store_engine) == VerifyResult(False, 0, 1, "missing entry before seq 2")


def test_a_consistently_rehashed_entry_breaks_its_successors_link(store_engine: Engine) -> None:
    fill(store_engine, 6)
    with store_engine.begin() as conn:
        row = conn.execute(select(AUDIT).where(AUDIT.c.seq == 3)).mappings().one()
        forged = {**row, "at": iso(row["at"]), "reason": "approved after all"}
        conn.execute(
            update(AUDIT).where(AUDIT.c.seq == 3).values(reason=forged["reason"], hash=entry_hash(forged))
        )
    assert verify(store_engine) == VerifyResult(False, 3, 4, "broken link")


def test_a_forged_first_entry_must_start_at_genesis(store_engine: Engine) -> None:
    fill(store_engine, 2)
    with store_engine.begin() as conn:
        row = conn.execute(select(AUDIT).where(AUDIT.c.seq == 1)).mappings().one()
        forged = {**row, "at": iso(row["at"]), "prev_hash": "1" * 64}
        conn.execute(
            update(AUDIT)
            .where(AUDIT.c.seq == 1)
            .values(prev_hash=forged["prev_hash"], hash=entry_hash(forged))
        )
    assert verify(store_engine) == VerifyResult(False, 0, 1, "broken link")


def test_concurrent_appends_from_threads_never_fork(store_engine: Engine) -> None:
    def appender(worker: int) -> list[int]:
        return [
            append(store_engine, actor=f"worker-{worker}", action="verdict", reason=f"{worker}/{i}").seq
            for i in range(25)
        ]

    with ThreadPoolExecutor(4) as pool:
        seqs = [seq for batch in pool.map(appender, range(4)) for seq in batch]

    assert sorted(seqs) == list(range(1, 101))
    assert verify(store_engine) == VerifyResult(True, 100)
    with store_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(AUDIT)).scalar_one() == 100


def _append_from_a_process(url: str, worker: int, n: int) -> list[int]:
    engine = make_engine(url)
    try:
        return [append(engine, actor=f"proc-{worker}", action="hold", reason=str(i)).seq for i in range(n)]
    finally:
        engine.dispose()


@pytest.mark.slow
def test_concurrent_appends_from_processes_never_fork(store_engine: Engine) -> None:
    url = store_engine.url.render_as_string(hide_password=False)
    # spawn, not fork: forking a process that holds connections and threads is unsafe.
    with ProcessPoolExecutor(3, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_append_from_a_process, url, w, 15) for w in range(3)]
        seqs = [seq for f in futures for seq in f.result(timeout=60)]
    assert sorted(seqs) == list(range(1, 46))
    assert verify(store_engine) == VerifyResult(True, 45)


def test_entries_newest_first_with_filters(store_engine: Engine) -> None:
    fill(store_engine, 12)
    latest = entries(store_engine, limit=3)
    assert [e.seq for e in latest] == [12, 11, 10]
    assert latest[0].at == T0 + timedelta(minutes=11)

    chat_b = entries(store_engine, tenant="clinic-1", route="chat")
    assert chat_b
    assert all((e.tenant, e.route) == ("clinic-1", "chat") for e in chat_b)
    assert [e.seq for e in chat_b] == sorted((e.seq for e in chat_b), reverse=True)
    assert {e.seq for e in entries(store_engine, action="hold")} == {3, 8}
    assert entries(store_engine, tenant="nobody") == []


def test_a_jsonl_export_verifies_without_the_database(store_engine: Engine) -> None:
    fill(store_engine, 7)
    out = io.StringIO()
    assert export(store_engine, out, "jsonl") == 7
    text = out.getvalue()
    assert text.isascii()  # escaped, so no line splitter can cut an entry in two
    lines = text.splitlines()
    assert len(lines) == 7
    assert verify_jsonl(lines) == VerifyResult(True, 7)
    assert verify_jsonl(io.StringIO(text)) == VerifyResult(True, 7)
    first = json.loads(lines[0])
    assert first["at"] == "2025-03-03T09:00:00.000000Z"
    assert first["prev_hash"] == GENESIS

    tampered = json.loads(lines[4])
    tampered["reason"] = "nothing to see"
    assert verify_jsonl([*lines[:4], json.dumps(tampered), *lines[5:]]) == VerifyResult(
        False, 4, 5, "hash mismatch"
    )
    assert verify_jsonl(lines[:2] + lines[3:]) == VerifyResult(False, 2, 3, "missing entry before seq 4")
    assert verify_jsonl([*lines[:3], lines[2], *lines[3:]]) == VerifyResult(
        False, 3, 4, "seq 3 out of order (expected 4)"
    )
    bad = verify_jsonl([*lines[:2], "{not json", *lines[3:]])
    assert (bad.ok, bad.entries, bad.first_bad) == (False, 2, 3)
    assert bad.problem is not None
    assert bad.problem.startswith("line 3: not JSON")
    wrong_type = json.loads(lines[0])
    wrong_type["seq"] = "1"
    assert verify_jsonl([json.dumps(wrong_type)]).problem == "line 1: seq is not a positive integer"


def test_a_csv_export_verifies_without_the_database(store_engine: Engine) -> None:
    fill(store_engine, 5)
    out = io.StringIO(newline="")
    assert export(store_engine, out, "csv") == 5
    assert verify_csv(io.StringIO(out.getvalue(), newline="")) == VerifyResult(True, 5)

    tampered = out.getvalue().replace("dr.aminah@klinik.my", "dr.someone@klinik.my", 1)
    assert verify_csv(io.StringIO(tampered, newline="")) == VerifyResult(False, 1, 2, "hash mismatch")


def test_export_refuses_an_unknown_format(store_engine: Engine) -> None:
    with pytest.raises(ValueError, match="unknown export format"):
        export(store_engine, io.StringIO(), "xml")  # type: ignore[arg-type]
