"""Property-based: whatever a client sends (random methods, paths, headers, bodies, framing, leaving
half-way), the tap forwards what the primary accepts unchanged, returns what the primary returns
unchanged, keeps answering, writes only stream entries that decode, and holds its memory.

The CI profile runs 60 cases; `python bench/fuzz_tap.py` runs thousands (docs/RELIABILITY.md)."""

from __future__ import annotations

import collections
import logging
import tracemalloc
from pathlib import Path

import pytest
from aiohttp.http_exceptions import HttpProcessingError
from hypothesis import given

from tests.conftest import TEST_REDIS_URL
from tests.fuzz.tapfuzz import Case, Reply, cases, fuzzing, grown, start_tracing, traced, traced_mb

WARM_UP = Case(
    b"POST", b"/v1/chat/completions", [], b"{}", "length", "complete", Reply(200, b"OK", [], b"{}", "length")
)


def test_the_tap_stays_transparent_and_alive_under_generated_traffic(
    tmp_path: Path, stream_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    outcomes: collections.Counter[str] = collections.Counter()
    memory: list[tracemalloc.Snapshot] = []
    start_tracing()
    try:
        with fuzzing(TEST_REDIS_URL, stream_prefix, tmp_path) as tap:
            tap.run(WARM_UP)

            @given(case=cases())
            def one(case: Case) -> None:
                outcomes[tap.run(case)] += 1
                if sum(outcomes.values()) == 10:
                    tap.settle()
                    memory.append(traced())

            one()
            tap.settle()
            memory.append(traced())
            entries = tap.all_entries_decode()
            assert tap.state is not None
            assert tap.state.capture is not None
            assert not tap.state.capture.dropped.get("encode_error")
    finally:
        tracemalloc.stop()

    # Clients leaving mid-request or mid-answer are ordinary: no handler error, no traceback in the log.
    # (aiohttp's own parser logs what it refuses with 400 at ERROR: its behaviour, in docs/RELIABILITY.md.)
    errors = [
        r
        for r in caplog.records
        if r.levelno >= logging.ERROR and not (r.exc_info and isinstance(r.exc_info[1], HttpProcessingError))
    ]
    assert not errors, [f"{r.name}: {r.getMessage()} {r.exc_info and r.exc_info[0]}" for r in errors[:3]]
    assert outcomes["forwarded, answered and captured"] > 0, outcomes
    assert entries >= outcomes["forwarded, answered and captured"]
    # Fifty cases later (gzip bombs, 300 KB bodies among them), the tap holds no more than it did.
    # (A leak of a body per case would be tens of MB; bench/fuzz_tap.py measures over 3,000 cases.)
    assert sum(outcomes.values()) >= 50
    assert len(memory) == 2
    growth = traced_mb(memory[1]) - traced_mb(memory[0])
    assert growth < 4.0, f"{growth:.1f} MB more: {grown(*memory)}"
