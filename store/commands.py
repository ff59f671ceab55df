"""The store's commands: `shadowgate export` (scored pairs), `shadowgate audit verify|export` and
`shadowgate review queue|mark`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, TextIO, cast

from shadowgate.crypto import cipher_from
from shadowgate.settings import Settings
from shadowgate.when import parse_moment
from store import audit, reviews
from store.db import open_store
from store.export import export

Format = Literal["jsonl", "csv"]


@contextmanager
def _writing(output: Path | None) -> Iterator[TextIO]:
    """The file to write, or standard output when none is named."""
    if output is None:
        yield sys.stdout
        return
    with output.open("w", encoding="utf-8", newline="") as out:
        yield out


def export_main(
    settings: Settings,
    *,
    fmt: str,
    output: Path | None,
    tenant: str | None,
    route: str | None,
    since: str | None,
    until: str | None,
    replay: str | None,
) -> int:
    with open_store(settings.database_url) as engine, _writing(output) as out:
        n = export(
            engine,
            out,
            cast(Format, fmt),
            tenant=tenant,
            route=route,
            since=parse_moment(since),
            until=parse_moment(until),
            replay=replay,
            cipher=cipher_from(settings.encryption),
        )
    print(f"shadowgate: exported {n} scored pairs", file=sys.stderr)
    return 0


def review_main(
    settings: Settings,
    action: str,
    *,
    tenant: str | None = None,
    route: str | None = None,
    pair: str | None = None,
    mark: str | None = None,
    by: str = "",
    note: str = "",
) -> int:
    """`review queue`: the flagged pairs nobody has reviewed; `review mark`: a person's mark on one."""
    with open_store(settings.database_url) as engine:
        if action == "export":
            n = 0
            for line in reviews.corpus_lines(engine, cipher_from(settings.encryption)):
                print(json.dumps(line, ensure_ascii=False))
                n += 1
            print(f"shadowgate: exported {n} reviewed pair(s) as clinical-corpus lines", file=sys.stderr)
            return 0
        if action == "queue":
            waiting = reviews.queue(engine, tenant=tenant, route=route)
            for f in waiting:
                print(f"{f.key}\t{f.tenant}\t{f.route}\t{f.captured_at:%Y-%m-%d %H:%M:%S} UTC")
            print(f"shadowgate: {len(waiting)} flagged pair(s) await review", file=sys.stderr)
            return 0
        try:
            reviews.mark(engine, pair or "", (mark or "").replace("-", "_"), by=by, note=note)
        except reviews.ReviewError as exc:
            print(f"shadowgate: {exc}.", file=sys.stderr)
            return 2
    print(f"recorded: {by.strip()} marks {pair} {mark}")
    return 0


def audit_main(settings: Settings, action: str, *, fmt: str, output: Path | None) -> int:
    with open_store(settings.database_url) as engine:
        if action == "verify":
            result = audit.verify(engine)
            if result.ok:
                print(f"audit chain intact: {result.entries} entries")
                return 0
            print(f"audit chain broken at entry {result.first_bad}: {result.problem}", file=sys.stderr)
            return 1
        with _writing(output) as out:
            n = audit.export(engine, out, cast(Format, fmt))
    print(f"shadowgate: exported {n} audit entries", file=sys.stderr)
    return 0
