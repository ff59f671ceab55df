"""`shadowgate export`: scored pairs to a file or standard output, as JSON lines or CSV."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from shadowgate.settings import Settings
from shadowgate.when import parse_when
from store.db import init_db, make_engine
from store.export import export


def run(
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
    engine = make_engine(settings.database_url)
    init_db(engine)
    window = {
        "since": _at(since),
        "until": _at(until),
    }
    try:
        if output is None:
            n = export(engine, sys.stdout, fmt, tenant=tenant, route=route, replay=replay, **window)  # type: ignore[arg-type]
        else:
            with output.open("w", encoding="utf-8", newline="") as out:
                n = export(engine, out, fmt, tenant=tenant, route=route, replay=replay, **window)  # type: ignore[arg-type]
    finally:
        engine.dispose()
    print(f"shadowgate: exported {n} scored pairs", file=sys.stderr)
    return 0


def _at(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromtimestamp(parse_when(text) / 1000, tz=UTC)
