"""How well the clinical-fact comparison tells clinically different answers from paraphrases.

Reads the labeled corpus (tests/data/clinical/*.jsonl): each pair is "different" (with its expected
differences) or "equivalent". A pair is flagged when the comparison reports a critical or major
difference, or cannot read it. Reported per category and language:
- recall: flagged share of the different pairs (and the share where an expected kind and slot was found);
- false alarms: flagged share of the equivalent pairs;
- critical-only recall: the share of different pairs with `clinical_ok` = 0 (a critical contradiction);
and the speed of the comparison alone on SOAP-length pairs, one core. Failing pairs are listed.

    python bench/clinical_accuracy.py            # table, failures, speed; writes bench/results/
    python bench/clinical_accuracy.py --failures 0 --no-speed
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from random import Random  # noqa: E402

from comparators.clinical import compare_clinical, facts_of  # noqa: E402
from simulator import text as simulator_text  # noqa: E402
from simulator.drift import apply_drift  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "clinical"
RESULTS = ROOT / "bench" / "results"


def load(paths: list[Path]) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in paths
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def judge(pair: dict[str, Any]) -> dict[str, Any]:
    found = compare_clinical(pair["primary"], pair["other"])
    serious = [d for d in found.differences if d.severity in ("critical", "major")]
    flagged = bool(serious) or found.unscorable is not None
    expected = {(e["kind"], e["slot"]) for e in pair.get("expected", [])}
    reported = {(d.kind, d.slot) for d in found.differences}
    return {
        "id": pair["id"],
        "lang": pair["lang"],
        "category": pair["category"],
        "label": pair["label"],
        "flagged": flagged,
        "critical": any(d.kind == "contradiction" and d.severity == "critical" for d in found.differences),
        "reason_found": bool(expected & reported) if expected else None,
        "differences": [
            f"{d.severity} {d.kind} {d.slot} [{d.entity}] {d.primary!r} → {d.other!r}"
            for d in found.differences
        ],
        "unscorable": found.unscorable,
    }


def table(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r[key]].append(r)
    groups["all"] = rows
    out = []
    for name, members in sorted(groups.items(), key=lambda kv: (kv[0] == "all", kv[0])):
        different = [r for r in members if r["label"] == "different"]
        equivalent = [r for r in members if r["label"] == "equivalent"]
        out.append(
            {
                key: name,
                "different": len(different),
                "recall": _share(different, "flagged"),
                "reason_found": _share(different, "reason_found"),
                "critical_recall": _share(different, "critical"),
                "equivalent": len(equivalent),
                "false_alarms": _share(equivalent, "flagged"),
            }
        )
    return out


def _share(rows: list[dict[str, Any]], field: str) -> float | None:
    return sum(1 for r in rows if r[field]) / len(rows) if rows else None


def _rate(pairs: list[tuple[str, str]], seconds: float, runs: int = 5) -> float:
    """Median over `runs` of pairs per second, each run `seconds` long; no cache between pairs."""
    rates = []
    for _ in range(runs):
        done = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            for primary, other in pairs:
                facts_of.cache_clear()
                compare_clinical(primary, other)
                done += 1
        rates.append(done / (time.perf_counter() - start))
    return statistics.median(rates)


def speed(pairs: list[dict[str, Any]], seconds: float = 1.5) -> dict[str, float]:
    """Pairs per second of the comparison alone (both sides read, no cache), one process, one thread:
    on the simulator's SOAP notes against a reworded and drifted copy (SOAP-length pairs), and on the
    corpus's 100 longest pairs. Then the time to read one text of growing length (linear, not
    quadratic), and a text over the limit (refused at once)."""
    soap = []
    for seed in range(200):
        note = simulator_text.soap_note(Random(seed), "en" if seed % 2 else "ms")
        soap.append((note, apply_drift(note, Random(seed), substitution=0.3, numbers=0.1)))
    longest = [(p["primary"], p["other"]) for p in sorted(pairs, key=lambda p: -len(p["primary"]))[:100]]
    note = soap[0][0]
    sizes = {}
    for copies in (20, 80, 320):
        text = "\n".join([note] * copies)
        start = time.perf_counter()
        facts_of.cache_clear()
        compare_clinical(text, text)
        sizes[len(text)] = time.perf_counter() - start
    start = time.perf_counter()
    compare_clinical(note, "x" * 1_000_000)
    refused = time.perf_counter() - start
    return {
        "soap_pairs_per_s": _rate(soap, seconds),
        "soap_chars_per_pair": sum(len(a) + len(b) for a, b in soap) / len(soap),
        "corpus_pairs_per_s": _rate(longest, seconds),
        "corpus_chars_per_pair": sum(len(a) + len(b) for a, b in longest) / len(longest),
        "seconds_by_chars": sizes,  # type: ignore[dict-item]
        "refused_1mb_s": refused,
    }


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def markdown(by_category: list[dict[str, Any]], by_lang: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# Clinical-fact comparison: accuracy on the labeled corpus",
        "",
        f"`{meta['command']}` · {meta['when']} · {meta['pairs']} pairs · {meta['machine']}",
        "",
    ]
    for title, rows, key in (("By category", by_category, "category"), ("By language", by_lang, "lang")):
        lines += [
            f"## {title}",
            "",
            f"| {key} | different | recall | expected difference found | critical-only recall | equivalent "
            "| false alarms |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r[key]} | {r['different']} | {_pct(r['recall'])} | {_pct(r['reason_found'])} | "
            f"{_pct(r['critical_recall'])} | {r['equivalent']} | {_pct(r['false_alarms'])} |"
            for r in rows
        ]
        lines.append("")
    if "speed" in meta:
        s = meta["speed"]
        grows = ", ".join(
            f"{chars:,} characters {sec * 1000:,.0f} ms" for chars, sec in s["seconds_by_chars"].items()
        )
        lines += [
            "## Speed (comparison alone: both sides read, no cache; one process, one thread; median of 5)",
            "",
            f"- SOAP-length pairs (the simulator's notes against a reworded, drifted copy, "
            f"{s['soap_chars_per_pair']:,.0f} characters a pair): **{s['soap_pairs_per_s']:,.0f} pairs/s**",
            f"- the corpus's 100 longest pairs ({s['corpus_chars_per_pair']:,.0f} characters a pair): "
            f"{s['corpus_pairs_per_s']:,.0f} pairs/s",
            f"- one long text compared with itself: {grows}",
            f"- a 1 MB answer: refused as unscorable in {s['refused_1mb_s'] * 1000:.2f} ms",
            "",
        ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("corpus", nargs="*", type=Path, help="JSON Lines files (default: the shipped corpus)")
    parser.add_argument("--failures", type=int, default=40, help="failing pairs to list (default 40)")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed measurement")
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/")
    args = parser.parse_args()
    paths = args.corpus or sorted(CORPUS.glob("*.jsonl"))
    pairs = load(paths)
    rows = [judge(p) for p in pairs]
    by_category, by_lang = table(rows, "category"), table(rows, "lang")
    meta: dict[str, Any] = {
        "command": "python bench/clinical_accuracy.py " + " ".join(sys.argv[1:]),
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "pairs": len(pairs),
        "machine": f"{_cpu()}, Python {platform.python_version()}",
    }
    if not args.no_speed:
        meta["speed"] = speed(pairs)
    failures = [r for r in rows if r["flagged"] != (r["label"] == "different")]
    report = markdown(by_category, by_lang, meta)
    if args.failures:
        report += f"\n## Failing pairs ({len(failures)}; first {min(len(failures), args.failures)})\n\n"
        for r in failures[: args.failures]:
            what = "missed" if r["label"] == "different" else "false alarm"
            report += f"- {r['id']} ({what}): " + ("; ".join(r["differences"]) or "nothing reported") + "\n"
    print(report)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "clinical_accuracy.md").write_text(report + "\n", encoding="utf-8")
        (RESULTS / "clinical_accuracy.json").write_text(
            json.dumps({"meta": meta, "by_category": by_category, "by_lang": by_lang,
                        "failures": [r["id"] for r in failures]}, indent=1) + "\n",
            encoding="utf-8",
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
