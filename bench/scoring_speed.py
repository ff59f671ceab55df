"""How fast pairs are scored (chat-sized and 10-minute transcripts, by batch size) and how fast they export.

    python bench/scoring_speed.py              # about 3 minutes on 2 cores
    python bench/scoring_speed.py --quick      # a smoke test
    python bench/scoring_speed.py --prepare    # only the worker's preparation (no model): ms a pair

Scoring is measured in-process on the worker's own code path (comparators.assess: extract, the route's
scorers, one batched model call for semantic similarity), without Redis or the store, so the figure is
the scoring itself; `--end-to-end` adds a run of the real worker (Redis at 127.0.0.1:6379, SQLite).
Export writes N scored pairs into a SQLite file with the store's own writer, then times
`store.export.export` to a null sink, for JSON lines and CSV.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from comparators.assess import Bodies, add_similarity, prepare, scored  # noqa: E402
from comparators.embedder import Embedder, cpu_has_bf16  # noqa: E402
from mirror.exchange import Body, Exchange, RequestSide, ResponseSide  # noqa: E402
from simulator.drift import apply_drift  # noqa: E402
from simulator.text import chat_answer, soap_note, transcript  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def cpu_model() -> str:
    """The CPU's model name and whether it has AMX (matrix units: what bf16 speed depends on most)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), ""
    )
    return f"{name or platform.machine()}, AMX: {'amx_bf16' in info}"


def chat_text(rng: random.Random, words: int, ms_share: float = 0.4) -> str:
    parts: list[str] = []
    while sum(len(p.split()) for p in parts) < words:
        lang: Literal["en", "ms"] = "ms" if rng.random() < ms_share else "en"
        parts.append(soap_note(rng, lang) if rng.random() < 0.5 else chat_answer(rng, lang))
    return " ".join(" ".join(parts).split()[:words])


def side(role: str, content: bytes, content_type: str) -> ResponseSide:
    return ResponseSide(
        role=role,  # type: ignore[arg-type]
        status=200,
        headers=[("Content-Type", content_type)],
        body=Body(len(content), content),
        started_at=0.0,
        headers_ms=300.0,
        ttfb_ms=300.0,
        total_ms=900.0,
    )


def chat_body(text: str, model: str) -> bytes:
    return json.dumps(
        {
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 50, "completion_tokens": len(text.split()), "total_tokens": 0},
        }
    ).encode()


def make_pairs(kind: str, n: int, seed: int, ms_share: float = 0.4) -> list[tuple[str, Exchange, Bodies]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if kind == "chat":
            text = chat_text(rng, 150, ms_share)
            other = apply_drift(text, random.Random(i), substitution=0.05, numbers=0.1, negation=0.05)
            route, prefix = "chat", "/v1/chat/completions"
            primary, candidate = chat_body(text, "gpt-4o-mini"), chat_body(other, "llama-3.1-70b")
            ctype = "application/json"
        else:
            # About 10 minutes of consultation at ~150 spoken words a minute.
            text = transcript(rng, "en" if i % 2 else "ms", min_words=1500)
            other = apply_drift(text, random.Random(i), substitution=0.03, drop_words=0.03)
            route, prefix = "audio", "/v1/audio/transcriptions"
            primary, candidate = json.dumps({"text": text}).encode(), json.dumps({"text": other}).encode()
            ctype = "application/json"
        x = Exchange(
            id=f"{kind}-{i}",
            tenant="bench",
            route=route,
            route_prefix=prefix,
            captured_at=time.time(),
            request=RequestSide(method="POST", path=prefix, query="", headers=[], body=Body(2, b"{}")),
            primary=side("primary", primary, ctype),
            candidate=side("candidate", candidate, ctype),
        )
        out.append((f"{i}-0", x, Bodies(b"{}", primary, candidate, b"")))
    return out


def chat_answer_of(bodies: Bodies) -> str:
    return str(json.loads(bodies.primary)["choices"][0]["message"]["content"])


def score_all(pairs: list[tuple[str, Exchange, Bodies]], embedder: Embedder, batch: int) -> float:
    """Pairs per second through prepare + batched similarity + ScoredPair, as the worker does it."""
    started = time.perf_counter()
    for i in range(0, len(pairs), batch):
        chunk = pairs[i : i + batch]
        prepared = [prepare(k, x, b) for k, x, b in chunk]
        add_similarity(
            prepared, embedder.encode, embedder.count_tokens, embedder.window, embedder.count_tokens_many
        )
        for p, (_, _, b) in zip(prepared, chunk, strict=True):
            scored(p, b)
    return len(pairs) / (time.perf_counter() - started)


def prepare_speed(n: int = 384, runs: int = 5) -> float:
    """Milliseconds a chat pair spends in `prepare` (extraction and every scorer but the model), median
    of `runs` over `n` pairs; the clinical facts' cache is emptied before each run."""
    from comparators import clinical

    pairs = make_pairs("chat", n, seed=1)
    for key, x, bodies in pairs[:32]:
        prepare(key, x, bodies)  # warm-up
    times = []
    for _ in range(runs):
        if hasattr(clinical, "facts_of"):  # (absent before the fact model: the bench times older trees too)
            clinical.facts_of.cache_clear()
        started = time.perf_counter()
        for key, x, bodies in pairs:
            prepare(key, x, bodies)
        times.append((time.perf_counter() - started) / n * 1000)
    return statistics.median(times)


def export_speed(n: int) -> dict[str, Any]:
    from comparators.scoring import Result
    from store.db import init_db, make_engine
    from store.export import export
    from store.records import ScoredPair, SideMeta
    from store.writes import save_scored

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        init_db(engine)
        rng = random.Random(1)
        started = time.perf_counter()
        for start in range(0, n, 2000):
            items = [
                ScoredPair(
                    key=f"{i}-0",
                    exchange_id=f"x{i}",
                    tenant=f"klinik-{i % 10}",
                    route=("chat", "audio", "embed")[i % 3],
                    replay=None,
                    captured_at=1_790_000_000 + i,
                    paired_at=1_790_000_001 + i,
                    primary=SideMeta(200, None, rng.uniform(300, 3000), 200.0, "gpt-4o-mini"),
                    candidate=SideMeta(
                        200, None, rng.uniform(300, 3000), 150.0, "llama-3.1-70b", "v1", "GPU-0"
                    ),
                    secondary=None,
                    scores={
                        "candidate": Result(
                            metrics={
                                "semantic_similarity": rng.uniform(0.8, 1),
                                "rouge_l_f1": rng.random(),
                                "fact_mismatches": float(rng.randint(0, 2)),
                                "latency_delta_ms": rng.uniform(-500, 500),
                            }
                        )
                    },
                )
                for i in range(start, min(n, start + 2000))
            ]
            save_scored(engine, items)
        write_s = time.perf_counter() - started
        out: dict[str, Any] = {"pairs": n, "write_s": round(write_s, 2)}
        for fmt in ("jsonl", "csv"):
            sink = io.StringIO()
            started = time.perf_counter()
            rows = export(engine, sink, fmt)
            seconds = time.perf_counter() - started
            out[fmt] = {
                "rows": rows,
                "seconds": round(seconds, 2),
                "rows_per_s": round(rows / seconds),
                "mb": round(len(sink.getvalue()) / 1e6, 1),
            }
        engine.dispose()  # checkpoints the WAL into the file, so its size is the store's
        size = os.path.getsize(f"{tmp}/bench.db")
        out["sqlite_mb"] = round(size / 1e6, 1)
    return out


async def end_to_end(n: int, batch: int, embedder: Embedder) -> dict[str, Any]:
    import uuid

    from comparators.worker import ScoringWorker
    from mirror.exchange import encode_entry
    from mirror.streams import Streams
    from shadowgate.settings import Settings, Worker
    from store.db import init_db, make_engine

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    from redis.asyncio import Redis

    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/e2e.db")
        init_db(engine)
        for _, x, _ in make_pairs("chat", n, seed=9):
            await redis.xadd(Streams(prefix).pairs, encode_entry(x))  # type: ignore[arg-type]
        settings = Settings(
            redis_url="redis://127.0.0.1:6379/0", stream_prefix=prefix, worker=Worker(batch=batch)
        )
        started = time.perf_counter()
        stats = await ScoringWorker(redis, settings, engine, embedder).run(asyncio.Event(), burst=True)
        seconds = time.perf_counter() - started
        engine.dispose()
    keys = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()
    return {
        "pairs": stats.scored,
        "batch": batch,
        "seconds": round(seconds, 2),
        "pairs_per_s": round(stats.scored / seconds, 1),
    }


def worker_speed(n: int, batch: int, embedder: Embedder, runs: int = 3) -> dict[str, Any]:
    """The median of `runs` end-to-end runs (this VM drifts by ±10 % from one run to the next)."""
    done = sorted(
        (asyncio.run(end_to_end(n, batch, embedder)) for _ in range(runs)), key=lambda r: r["pairs_per_s"]
    )
    return {**done[len(done) // 2], "runs": [r["pairs_per_s"] for r in done]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--end-to-end", action="store_true", help="also time the real worker (Redis + SQLite)"
    )
    parser.add_argument("--export-pairs", type=int, default=100_000)
    parser.add_argument(
        "--prepare", action="store_true", help="only time the worker's preparation (no model), then stop"
    )
    args = parser.parse_args()
    if args.prepare:
        print(f"prepare: {prepare_speed():.2f} ms a chat pair (384 pairs, median of 5; no model)")
        return
    n_chat, n_audio, batches = (64, 4, (8, 32)) if args.quick else (384, 16, (8, 32, 64, 128))
    export_n = 5_000 if args.quick else args.export_pairs

    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs, {cpu_model()}, bf16 native: {cpu_has_bf16()}",
        "command": " ".join(["python", "bench/scoring_speed.py", *sys.argv[1:]]),
    }
    chat = make_pairs("chat", n_chat, seed=1)
    audio = make_pairs("audio", n_audio, seed=2)
    words = statistics.mean(len(chat_answer_of(b).split()) for _, _, b in chat)
    audio_words = statistics.mean(len(json.loads(b.primary)["text"].split()) for _, _, b in audio)
    results["chat_words"] = round(words)
    chat_en = make_pairs("chat", n_chat, seed=1, ms_share=0.0)
    results["transcript_words"] = round(audio_words)
    results["chat"] = {}
    for precision, compiled in (("fp32", "off"), ("bf16", "off"), ("auto", "auto")):
        embedder = Embedder(precision=precision, compile=compiled)  # type: ignore[arg-type]
        label = f"{embedder.precision}{', compiled' if embedder.compiled else ''}"
        if precision == "auto":
            label = f"`auto` ({label})"
        score_all(chat[:16], embedder, 16)  # warm-up
        results["chat"][label] = {
            str(b): round(statistics.median(score_all(chat, embedder, b) for _ in range(2)), 1)
            for b in batches
        }
        print(label, results["chat"][label], flush=True)
    auto = embedder  # the worker's defaults: what the rows below and the end-to-end run use
    # English only: the "chat-sized pair" (Malay takes ~1.5x the tokens for the same words).
    results["chat_en_bf16"] = {
        str(b): round(statistics.median(score_all(chat_en, embedder, b) for _ in range(2)), 1)
        for b in batches
    }
    print("auto, English only", results["chat_en_bf16"], flush=True)
    results["tokens_per_text"] = {
        "mixed": round(statistics.mean(embedder.count_tokens(chat_answer_of(b)) for _, _, b in chat)),
        "english": round(statistics.mean(embedder.count_tokens(chat_answer_of(b)) for _, _, b in chat_en)),
        "window": embedder.window,
    }
    results["auto_precision"] = f"{auto.precision}{', compiled' if auto.compiled else ''}"
    results["transcripts_per_s"] = round(score_all(audio, auto, 8), 2)
    print("transcripts/s", results["transcripts_per_s"], flush=True)
    if args.end_to_end:
        results["end_to_end"] = [worker_speed(n_chat, b, auto) for b in (32, 64, 128)]
        print("end to end", results["end_to_end"], flush=True)
    results["export"] = export_speed(export_n)
    print("export", results["export"], flush=True)

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scoring_speed.json").write_text(json.dumps(results, indent=2))
    lines = [
        "# Scoring and export speed",
        "",
        f"- Date: {results['date']}; machine: {results['machine']}",
        f"- Command: `{results['command']}`",
        f"- Chat pairs: {len(chat)} of ~{results['chat_words']} words a side (SOAP notes and answers, EN/MS, "
        "with drift); transcripts: "
        f"{len(audio)} of ~{results['transcript_words']} words (about 10 minutes of speech).",
        "- Scoring runs the worker's own path in-process (extract, the route's scorers, one batched "
        "all-MiniLM-L6-v2 call for semantic similarity); median of 2 runs.",
        "",
        "## Chat pairs scored per second, by batch size",
        "",
        "| precision | " + " | ".join(f"batch {b}" for b in batches) + " |",
        "|---|" + "---:|" * len(batches),
    ]
    for precision, row in results["chat"].items():
        lines.append(f"| {precision} | " + " | ".join(str(row[str(b)]) for b in batches) + " |")
    row = results["chat_en_bf16"]
    lines.append("| `auto`, English only | " + " | ".join(str(row[str(b)]) for b in batches) + " |")
    tok = results["tokens_per_text"]
    lines += [
        "",
        f"Tokens per answer: {tok['mixed']} (EN/MS mix), {tok['english']} (English only); the model's "
        f"window is {tok['window']}, so a longer answer is embedded as two chunks, not truncated.",
    ]
    lines += [
        "",
        "Target: ≥ 50 chat pairs/s on this 2-core machine. "
        f"`auto` precision here is **{results['auto_precision']}**.",
        "",
        f"## 10-minute transcripts: {results['transcripts_per_s']} pairs/s "
        "(WER/CER + clinical facts, no model)",
        "",
    ]
    if "end_to_end" in results:
        lines += [
            f"## The real worker (Redis + SQLite, `{results['auto_precision']}`), chat pairs/s",
            "",
            "| worker.batch | pairs | seconds | pairs/s (median) | runs |",
            "|---:|---:|---:|---:|---|",
            *(
                f"| {e['batch']} | {e['pairs']} | {e['seconds']} | {e['pairs_per_s']} | "
                f"{', '.join(str(r) for r in e['runs'])} |"
                for e in results["end_to_end"]
            ),
            "",
        ]
    ex = results["export"]
    lines += [
        f"## Export of {ex['pairs']:,} scored pairs "
        f"(SQLite, {ex['sqlite_mb']} MB; written in {ex['write_s']} s)",
        "",
        "| format | seconds | rows/s | MB |",
        "|---|---:|---:|---:|",
        f"| jsonl | {ex['jsonl']['seconds']} | {ex['jsonl']['rows_per_s']:,} | {ex['jsonl']['mb']} |",
        f"| csv | {ex['csv']['seconds']} | {ex['csv']['rows_per_s']:,} | {ex['csv']['mb']} |",
    ]
    (RESULTS / "scoring_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
