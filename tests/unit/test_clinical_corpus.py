"""The labeled clinical corpus (tests/data/clinical/): its shape, and the comparison's accuracy on it.

The accuracy figures per category and language, with the failing pairs, come from
`python bench/clinical_accuracy.py`; this test keeps the overall targets from slipping unnoticed.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from comparators.clinical import compare_clinical

CORPUS = Path(__file__).resolve().parents[1] / "data" / "clinical"
CATEGORIES = {
    "dose", "drug", "swap", "route", "frequency", "duration", "allergy", "side", "assertion", "test",
    "vital", "lab", "followup", "omission", "numbers", "mixed",
}  # fmt: skip
SLOTS = {
    "drug", "dose", "route", "frequency", "allergy", "side", "site", "assertion", "result", "value",
    "duration", "quantity", "timing", "followup", "status",
}  # fmt: skip


@pytest.fixture(scope="module")
def pairs() -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(CORPUS.glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def test_the_corpus_covers_every_kind_and_language_in_balance(pairs: list[dict[str, Any]]) -> None:
    assert len(pairs) >= 400
    assert len({p["id"] for p in pairs}) == len(pairs)
    labels = Counter(p["label"] for p in pairs)
    assert set(labels) == {"different", "equivalent"}
    assert 0.45 <= labels["different"] / len(pairs) <= 0.55
    assert {p["category"] for p in pairs} == CATEGORIES
    assert {p["lang"] for p in pairs} == {"en", "ms", "mixed", "asr"}
    for p in pairs:
        assert p["primary"].strip()
        assert p["other"].strip()
        if p["label"] == "equivalent":
            assert p["expected"] == [], p["id"]
        else:
            assert p["expected"], p["id"]
            for e in p["expected"]:
                assert e["kind"] in ("contradiction", "omission", "addition"), p["id"]
                assert e["slot"] in SLOTS, p["id"]
                assert e["severity"] in ("critical", "major", "minor"), p["id"]


def test_recall_and_false_alarms_meet_the_targets(pairs: list[dict[str, Any]]) -> None:
    """A pair is flagged when a critical or major difference is found (bench/clinical_accuracy.py)."""
    flagged = {
        p["id"]: any(d.severity != "minor" for d in compare_clinical(p["primary"], p["other"]).differences)
        for p in pairs
    }
    different = [p["id"] for p in pairs if p["label"] == "different"]
    equivalent = [p["id"] for p in pairs if p["label"] == "equivalent"]
    recall = sum(flagged[i] for i in different) / len(different)
    false_alarms = sum(flagged[i] for i in equivalent) / len(equivalent)
    assert recall >= 0.97, [i for i in different if not flagged[i]]
    assert false_alarms <= 0.03, [i for i in equivalent if flagged[i]]
