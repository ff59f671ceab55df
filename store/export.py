"""Streams scored pairs (a pair with its candidate scores) out of the store as JSON lines or CSV."""

from __future__ import annotations

import base64
import csv
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal, TextIO

from sqlalchemy import Engine, Select, select

from comparators.scoring import METRICS
from shadowgate.crypto import Cipher
from store.models import PAIRS, PAYLOADS, SCORES
from store.payloads import opened_payload
from store.queries import window_filters

# Rows fetched at a time: a server-side cursor on PostgreSQL, so memory stays flat on any export size.
BATCH = 1000

PAIR_COLUMNS = [c.name for c in PAIRS.columns]
PAYLOAD_COLUMNS = ["request_b64", "primary_text", "candidate_text", "secondary_text"]


def export(
    engine: Engine,
    out: TextIO,
    fmt: Literal["jsonl", "csv"],
    *,
    tenant: str | None = None,
    route: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    replay: str | None = None,
    include_payloads: bool = False,
    cipher: Cipher | None = None,
) -> int:
    """Write the scored pairs in the window to `out`, oldest first; returns how many rows it wrote.

    Datetimes are ISO 8601 in UTC; CSV leaves NULLs empty. Payloads (clinical text, the request as
    base64) only with `include_payloads=True`, opened with `cipher` when they were stored sealed.
    """
    if fmt not in ("jsonl", "csv"):
        raise ValueError(f"unknown export format {fmt!r}")
    stmt = _statement(tenant, route, since, until, replay, include_payloads)
    names = [*PAIR_COLUMNS, *METRICS, *(PAYLOAD_COLUMNS if include_payloads else [])]
    writer = csv.DictWriter(out, fieldnames=names, extrasaction="raise") if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    written = 0
    for row in _rows(engine, stmt, cipher, include_payloads):
        if writer is not None:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
        else:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        written += 1
    return written


def _statement(
    tenant: str | None,
    route: str | None,
    since: datetime | None,
    until: datetime | None,
    replay: str | None,
    include_payloads: bool,
) -> Select[Any]:
    columns = [*PAIRS.columns, *(SCORES.c[name] for name in METRICS)]
    source = PAIRS.join(SCORES, (SCORES.c.pair_key == PAIRS.c.key) & (SCORES.c.role == "candidate"))
    if include_payloads:
        columns += [
            PAYLOADS.c.request,
            PAYLOADS.c.primary_text,
            PAYLOADS.c.candidate_text,
            PAYLOADS.c.secondary_text,
        ]
        source = source.outerjoin(PAYLOADS, PAYLOADS.c.pair_key == PAIRS.c.key)
    return (
        select(*columns)
        .select_from(source)
        .where(*window_filters(PAIRS, tenant=tenant, route=route, since=since, until=until, replay=replay))
        .order_by(PAIRS.c.captured_at, PAIRS.c.key)
    )


def _rows(
    engine: Engine, stmt: Select[Any], cipher: Cipher | None, include_payloads: bool
) -> Iterator[dict[str, Any]]:
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(stmt)
        for row in result.mappings():
            values = dict(row)
            if include_payloads and values["request"] is not None:
                payload = opened_payload({**values, "pair_key": values["key"]}, cipher)
                values.update(
                    request=payload.request,
                    primary_text=payload.primary,
                    candidate_text=payload.candidate,
                    secondary_text=payload.secondary,
                )
            yield {_name(k): _plain(v) for k, v in values.items()}


def _name(key: str) -> str:
    return "request_b64" if key == "request" else key


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value
