"""From a pair to its scores: one model call per batch, none for identical answers."""

from __future__ import annotations

import json

import numpy as np
from numpy.typing import NDArray

from comparators.assess import Bodies, add_similarity, prepare, scored
from mirror.exchange import Body, Exchange, RequestSide, ResponseSide


def chat(text: str) -> bytes:
    return json.dumps({"model": "m", "choices": [{"index": 0, "message": {"content": text}}]}).encode()


def pair(i: int, primary: str, candidate: str) -> tuple[str, Exchange, Bodies]:
    def side(role: str, body: bytes) -> ResponseSide:
        return ResponseSide(
            role=role,  # type: ignore[arg-type]
            status=200,
            headers=[("Content-Type", "application/json")],
            body=Body(len(body), body),
            started_at=0.0,
            headers_ms=1.0,
            ttfb_ms=1.0,
            total_ms=2.0,
        )

    p, c = chat(primary), chat(candidate)
    x = Exchange(
        id=f"x{i}",
        tenant="t",
        route="chat",
        route_prefix="/v1/chat/completions",
        captured_at=1.0,
        request=RequestSide(
            method="POST", path="/v1/chat/completions", query="", headers=[], body=Body(0, b"")
        ),
        primary=side("primary", p),
        candidate=side("candidate", c),
    )
    return f"{i}-0", x, Bodies(b"", p, c, b"")


def test_one_model_call_per_batch_and_none_for_identical_answers() -> None:
    calls: list[list[str]] = []

    def encode(texts: list[str]) -> NDArray[np.float32]:
        calls.append(texts)
        # A fake model: the first text points one way, the rest another.
        return np.array(
            [[1.0, 0.0] if t.startswith("Paracetamol 500") else [0.0, 1.0] for t in texts], np.float32
        )

    items = [
        pair(1, "Paracetamol 500 mg three times a day.", "Paracetamol 500 mg three times a day."),
        pair(2, "Paracetamol 500 mg three times a day.", "Rest and fluids."),
    ]
    prepared = [prepare(k, x, b) for k, x, b in items]
    add_similarity(prepared, encode, lambda t: len(t.split()), window=100)
    assert len(calls) == 1
    assert sorted(calls[0]) == ["Paracetamol 500 mg three times a day.", "Rest and fluids."]
    assert prepared[0].results["candidate"].metrics["semantic_similarity"] == 1.0
    assert prepared[1].results["candidate"].metrics["semantic_similarity"] == 0.0
    out = scored(prepared[1], items[1][2])
    assert out.key == "2-0"
    assert out.payload is not None
    assert out.payload.candidate == "Rest and fluids."
    assert out.scores["candidate"].metrics["rouge_l_f1"] == 0.0
