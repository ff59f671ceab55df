"""What encryption at rest costs where it runs: a stream entry's encoding (the tap, per captured request),
its decoding (dispatch, the worker), a blob's write and read, a payload row's sealing.

    python bench/encryption_cost.py [--repeat 5]

Each figure is the median over `--repeat` rounds of a timed loop (time.perf_counter), in microseconds
per operation (milliseconds for blobs), plain and sealed side by side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mirror.blobs import BlobStore
from mirror.exchange import Body, Exchange, RequestSide, ResponseSide, decode_entry, encode_entry
from shadowgate.crypto import Cipher
from store.payloads import sealed_payload_row


def exchange(request_bytes: int, response_bytes: int) -> Exchange:
    return Exchange(
        id="bench-0001",
        tenant="klinik-a",
        route="chat",
        route_prefix="/v1/chat/completions",
        captured_at=time.time(),
        request=RequestSide(
            "POST",
            "/v1/chat/completions",
            "",
            [("Content-Type", "application/json"), ("Authorization", "[redacted]")],
            Body(request_bytes, os.urandom(request_bytes)),
        ),
        primary=ResponseSide(
            role="primary",
            status=200,
            headers=[("Content-Type", "application/json")],
            body=Body(response_bytes, os.urandom(response_bytes)),
            started_at=time.time(),
            headers_ms=300.0,
            ttfb_ms=300.0,
            total_ms=900.0,
        ),
    )


def per_op(fn: Callable[[], object], n: int, repeat: int) -> float:
    """Median seconds per call of `fn` over `repeat` rounds of `n` calls."""
    rounds = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - started) / n)
    return statistics.median(rounds)


def as_read(fields: dict[str, bytes | str | int]) -> dict[bytes, bytes]:
    return {k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cipher = Cipher({"k1": os.urandom(32)}, "k1")
    rows: list[tuple[str, str, float, float]] = []

    for label, req, resp, n in (
        ("chat entry, 0.4 KB + 0.7 KB", 400, 700, 20_000),
        ("entry, 4 KB + 60 KB", 4096, 61_440, 3000),
    ):
        x = exchange(req, resp)
        plain, sealed = as_read(encode_entry(x)), as_read(encode_entry(x, cipher))
        rows.append(
            (
                f"encode {label}",
                "µs",
                per_op(lambda: encode_entry(x), n, args.repeat) * 1e6,  # noqa: B023
                per_op(lambda: encode_entry(x, cipher), n, args.repeat) * 1e6,  # noqa: B023
            )
        )
        rows.append(
            (
                f"decode {label}",
                "µs",
                per_op(lambda: decode_entry(plain), n, args.repeat) * 1e6,  # noqa: B023
                per_op(lambda: decode_entry(sealed, cipher), n, args.repeat) * 1e6,  # noqa: B023
            )
        )

    row = {
        "pair_key": "1-0",
        "request": os.urandom(2048),
        "primary_text": "x" * 2000,
        "candidate_text": "y" * 2000,
    }
    row["secondary_text"] = None
    rows.append(
        (
            "seal a payload row (2 KB + 2 x 2,000 chars)",
            "µs",
            per_op(lambda: sealed_payload_row(row, None), 20_000, args.repeat) * 1e6,
            per_op(lambda: sealed_payload_row(row, cipher), 20_000, args.repeat) * 1e6,
        )
    )

    with tempfile.TemporaryDirectory() as tmp:
        for size in (1 << 20, 16 << 20):
            data = os.urandom(size)
            plain_store, sealed_store = BlobStore(Path(tmp) / "p"), BlobStore(Path(tmp) / "s", cipher)
            plain_ref, sealed_ref = plain_store.put(data), sealed_store.put(data)
            mib = size >> 20
            rows.append(
                (
                    f"blob read, {mib} MiB",
                    "ms",
                    per_op(lambda: plain_store.get(plain_ref), 5, args.repeat) * 1e3,  # noqa: B023
                    per_op(lambda: sealed_store.get(sealed_ref), 5, args.repeat) * 1e3,  # noqa: B023
                )
            )
            data2 = bytearray(data)

            def fresh_put(store: BlobStore, body: bytearray = data2) -> None:
                body[:8] = os.urandom(8)  # a new body each time, so it is really written
                store.put(bytes(body))

            rows.append(
                (
                    f"blob write, {mib} MiB",
                    "ms",
                    per_op(lambda: fresh_put(plain_store), 5, args.repeat) * 1e3,  # noqa: B023
                    per_op(lambda: fresh_put(sealed_store), 5, args.repeat) * 1e3,  # noqa: B023
                )
            )

    print(f"command: python bench/encryption_cost.py --repeat {args.repeat}")
    print("| operation | plain | sealed | added |")
    print("|---|---:|---:|---:|")
    for name, unit, plain_t, sealed_t in rows:
        print(f"| {name} | {plain_t:.1f} {unit} | {sealed_t:.1f} {unit} | +{sealed_t - plain_t:.1f} {unit} |")


if __name__ == "__main__":
    main()
