"""`shadowgate audit verify|export`: check the hash chain, or write it out for an auditor."""

from __future__ import annotations

import sys
from pathlib import Path

from shadowgate.settings import Settings
from store.audit import export, verify
from store.db import init_db, make_engine


def run(settings: Settings, action: str, *, fmt: str, output: Path | None) -> int:
    engine = make_engine(settings.database_url)
    init_db(engine)
    try:
        if action == "verify":
            result = verify(engine)
            if result.ok:
                print(f"audit chain intact: {result.entries} entries")
                return 0
            print(f"audit chain broken at entry {result.first_bad}: {result.problem}", file=sys.stderr)
            return 1
        if output is None:
            n = export(engine, sys.stdout, fmt)  # type: ignore[arg-type]
        else:
            with output.open("w", encoding="utf-8", newline="") as out:
                n = export(engine, out, fmt)  # type: ignore[arg-type]
        print(f"shadowgate: exported {n} audit entries", file=sys.stderr)
        return 0
    finally:
        engine.dispose()
