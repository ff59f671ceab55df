"""Where the gate's absolute similarity floor should sit: the semantic similarity of answers that say the
same clinical facts in other words, measured on the labeled corpus (tests/data/clinical/*.jsonl).

The gate compares the *mean* similarity of a window of pairs with `semantic_similarity_min` when no noise
floor (primary vs secondary) is measured. An equivalent candidate must pass it, so the floor is calibrated
on the corpus's equivalent pairs: the 1st percentile of the mean over 100-pair windows drawn from them
(2,000 draws, seeded), rounded down to 0.05. Similarity is computed exactly as the worker computes it (the
default embedding model, long answers chunked, `comparators.text.similarity_from_chunks`).

    python bench/similarity_floor.py        # writes bench/results/similarity_floor.md and .json
"""

from __future__ import annotations

import json
import math
import random
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from comparators.embedder import Embedder  # noqa: E402
from comparators.text import TokenCounts, chunk_for_embedding, similarity_from_chunks  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "clinical"
RESULTS = ROOT / "bench" / "results"
WINDOW = 100
DRAWS = 2000


def similarities(pairs: list[dict[str, Any]], embedder: Embedder) -> list[float]:
    texts = list(dict.fromkeys(t for p in pairs for t in (p["primary"], p["other"])))
    counts = TokenCounts(embedder.count_tokens, embedder.count_tokens_many)
    counts.prefill(texts)
    chunks = {t: chunk_for_embedding(t, counts, embedder.window) for t in texts}
    vectors = embedder.encode([c for parts in chunks.values() for c in parts])
    by_text, row = {}, 0
    for text, parts in chunks.items():
        by_text[text] = vectors[row : row + len(parts)]
        row += len(parts)
    return [
        1.0
        if p["primary"] == p["other"]
        else similarity_from_chunks(by_text[p["primary"]], by_text[p["other"]])
        for p in pairs
    ]


def main() -> int:
    pairs = [
        json.loads(line)
        for path in sorted(CORPUS.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    embedder = Embedder()
    values = similarities(pairs, embedder)
    groups: dict[str, list[float]] = {}
    for p, v in zip(pairs, values, strict=True):
        groups.setdefault(f"{p['label']} {p['lang']}", []).append(v)
        groups.setdefault(f"{p['label']} all", []).append(v)
    equivalent = groups["equivalent all"]
    rng = random.Random(0)
    means = sorted(statistics.mean(rng.choices(equivalent, k=WINDOW)) for _ in range(DRAWS))
    p1 = means[DRAWS // 100]
    floor = math.floor(p1 * 20) / 20
    rows = [
        {"group": g, "n": len(v), "mean": statistics.mean(v), "p5": sorted(v)[len(v) // 20], "min": min(v)}
        for g, v in sorted(groups.items())
    ]
    report = [
        "# Similarity of equivalent and clinically different answers (the corpus)",
        "",
        f"`python bench/similarity_floor.py` · {datetime.now(UTC):%Y-%m-%d %H:%M UTC} · model "
        f"{embedder.model_path.parent.name}, {embedder.precision}",
        "",
        "| pairs | n | mean | 5th percentile | lowest |",
        "|---|---:|---:|---:|---:|",
        *(f"| {r['group']} | {r['n']} | {r['mean']:.3f} | {r['p5']:.3f} | {r['min']:.3f} |" for r in rows),
        "",
        f"Mean over {WINDOW}-pair windows of equivalent pairs ({DRAWS} seeded draws): 1st percentile "
        f"**{p1:.3f}**, so the calibrated floor is **{floor:.2f}**.",
        "",
    ]
    print("\n".join(report))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "similarity_floor.md").write_text("\n".join(report), encoding="utf-8")
    (RESULTS / "similarity_floor.json").write_text(
        json.dumps({"groups": rows, "window_mean_p1": p1, "floor": floor}, indent=1) + "\n", encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
