"""The tap's fuzz run: thousands of generated cases (tests/fuzz/tapfuzz.py) against one tap process.

Each case sends a generated request over a raw socket (random method, path, headers — huge, repeated,
non-ASCII, obs-text —, body — invalid JSON or UTF-8, truncated multipart, gzip, a 256 MiB gzip bomb —,
framing — Content-Length right, short or long, chunked —, and a client that may leave half-way) to a
tap whose primary records the raw bytes it gets and answers as the case says. Every case is checked as
in tests/fuzz (primary got what the client sent, client got what the primary sent, the capture decodes
and matches, the tap answers its health check). Memory: the process's RSS after a warm-up, a tenth of
the way in, and at the end. Writes bench/results/fuzz_tap.md.

    python bench/fuzz_tap.py                 # 3000 cases (about 4 minutes on 2 cores)
    python bench/fuzz_tap.py --examples 200  # a smoke run
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import shlex
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

from tests.fuzz.tapfuzz import (  # noqa: E402
    KNOWN_METHODS,
    Case,
    Reply,
    cases,
    fuzzing,
    rss_mb,
    start_tracing,
    traced_mb,
)

REDIS_URL = os.environ.get("SHADOWGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RESULTS = ROOT / "bench" / "results" / "fuzz_tap.md"


def features(case: Case) -> list[str]:
    """What a case exercises, for the coverage table."""
    out = [f"framing: {case.framing}", f"client: {case.client}", f"reply framing: {case.reply.framing}"]
    if case.method not in KNOWN_METHODS:
        out.append("method: random token (the tap's parser refuses it)")
    elif case.method not in (b"GET", b"POST", b"PUT", b"PATCH", b"DELETE"):
        out.append("method: other known (HEAD, OPTIONS, TRACE, PROPFIND, ...)")
    if any(b >= 0x80 for b in case.target):
        out.append("path: raw non-ASCII")
    names = [k.lower() for k, _ in case.headers]
    if len(names) != len(set(names)):
        out.append("headers: repeated")
    values = [v for _, v in case.headers]
    if any(len(v) >= 4000 for v in values):
        out.append("headers: huge value")
    if any(not v.isascii() for v in values):
        utf8 = all(_is_utf8(v) for v in values)
        out.append("headers: non-ASCII UTF-8" if utf8 else "headers: obs-text (not UTF-8)")
    encodings = {v.lower() for k, v in case.headers if k.lower() == b"content-encoding"}
    if b"gzip" in encodings:
        out.append("body: gzip bomb (256 MiB inflated)" if len(case.body) > 100_000 else "body: gzip")
    elif len(case.body) > 64 * 1024:
        out.append("body: > 64 KiB (blob store)")
    if any(b"multipart" in v for k, v in case.headers if k.lower() == b"content-type"):
        out.append("body: truncated multipart")
    if case.reply.body and any(
        v == b"gzip" for k, v in case.reply.headers if k.lower() == b"content-encoding"
    ):
        out.append("reply: gzip" + (" bomb" if len(case.reply.body) > 100_000 else ""))
    return out


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--no-trace", dest="trace", action="store_false", help="skip tracemalloc (faster)")
    args = parser.parse_args()

    prefix = f"sgfuzz-{uuid.uuid4().hex[:8]}"
    outcomes: collections.Counter[str] = collections.Counter()
    seen: collections.Counter[str] = collections.Counter()
    rss: dict[str, float] = {}
    traced: dict[str, float] = {}
    started = time.monotonic()
    failure = None
    with tempfile.TemporaryDirectory(prefix="sgfuzz-") as tmp, fuzzing(REDIS_URL, prefix, Path(tmp)) as tap:
        tap.run(
            Case(
                b"POST",
                b"/v1/chat/completions",
                [],
                b"{}",
                "length",
                "complete",
                Reply(200, b"OK", [], b"{}", "length"),
            )
        )
        rss["after warm-up"] = rss_mb()
        if args.trace:
            start_tracing()

        @seed(args.seed)
        @settings(
            max_examples=args.examples,
            deadline=None,
            database=None,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.large_base_example,
            ],
        )
        @given(case=cases())
        def one(case: Case) -> None:
            outcomes[tap.run(case)] += 1
            seen.update(features(case))
            if sum(outcomes.values()) == args.examples // 10:
                rss["a tenth of the way"] = rss_mb()
                if args.trace:
                    tap.settle()
                    traced["a tenth of the way"] = traced_mb()

        try:
            one()
        except Exception as exc:  # the minimal failing case is in the message
            failure = f"{type(exc).__name__}: {exc}"
            print(failure, *getattr(exc, "__notes__", ()), sep="\n", file=sys.stderr)
        rss["at the end"] = rss_mb()
        if args.trace:
            tap.settle()
            traced["at the end"] = traced_mb()
        entries = tap.all_entries_decode()
        assert tap.state is not None
        assert tap.state.capture is not None
        dropped = dict(tap.state.capture.dropped)
        captured = tap.state.capture.captured
    elapsed = time.monotonic() - started
    total = sum(outcomes.values())
    report = render(args, total, outcomes, seen, rss, traced, entries, captured, dropped, elapsed, failure)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    print(report)
    return 1 if failure else 0


def render(
    args: argparse.Namespace,
    total: int,
    outcomes: collections.Counter[str],
    seen: collections.Counter[str],
    rss: dict[str, float],
    traced: dict[str, float],
    entries: int,
    captured: int,
    dropped: dict[str, int],
    elapsed: float,
    failure: str | None,
) -> str:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    verdict = f"FAILED — {failure}" if failure else "passed"
    command = ["python", "bench/fuzz_tap.py", "--examples", str(args.examples), "--seed", str(args.seed)]
    lines = [
        "# Tap fuzz run",
        "",
        f"`{shlex.join(command)}` — {when}, {elapsed:.0f} s",
        "",
        f"**Result: {verdict}** — {total} generated cases, all checked.",
        "",
        "| what became of a case | cases |",
        "|---|---:|",
        *(f"| {k} | {v} |" for k, v in outcomes.most_common()),
        "",
        "| what the cases exercised | cases |",
        "|---|---:|",
        *(f"| {k} | {v} |" for k, v in sorted(seen.items())),
        "",
        f"Stream entries written: {entries}, every one decoded (`decode_entry`); the tap counted {captured}"
        f" captured, drops: {dropped or 'none'}.",
        "",
        "| memory | MB |",
        "|---|---:|",
        *(f"| process RSS, {k} | {v:.0f} |" for k, v in rss.items()),
        *(
            f"| Python memory held by the tap and its libraries (tracemalloc), {k} | {v:.2f} |"
            for k, v in traced.items()
        ),
        "",
        "RSS includes hypothesis, which keeps every case of a run until the run ends, and the allocator's"
        " free lists; the tracemalloc figure leaves hypothesis and the cases out: its growth is what the"
        " tap would leak.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
