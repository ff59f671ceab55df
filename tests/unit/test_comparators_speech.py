"""Transcript scoring: the pinned normalization, hand-checked WER and CER, empties, fast path equals jiwer."""

from __future__ import annotations

from random import Random

import pytest

from comparators import speech
from comparators.scoring import Comparison, Side
from simulator import text
from simulator.drift import apply_drift


def _side(transcript: str | None) -> Side:
    return Side(status=200, error=None, total_ms=900.0, ttfb_ms=None, model="whisper-1", text=transcript)


def _score(primary: str | None, other: str | None) -> dict[str, float]:
    return speech.score_speech(Comparison("audio", _side(primary), _side(other), "candidate")).metrics


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("The Cat, sat.", "the cat sat"),
        ("Um, the patient's BP is one hundred and twenty over eighty.", "the patient's bp is 120 over 80"),
        ("Paracetamol five hundred mg", "paracetamol 500 mg"),
        ("twenty one days", "21 days"),
        ("two point five mg", "2.5 mg"),
        ("zero point five", "0.5"),
        ("a thousand and one", "1001"),
        ("two million three hundred thousand and four", "2300004"),
        ("one two three", "1 2 3"),  # digits read out one by one stay separate numbers
        ("the one and only", "the 1 and only"),
        ("twelve hundred", "1200"),
        ("5 hundred", "500"),
        ("1,000 mg or 500mg", "1000 mg or 500 mg"),
        ("uh, er, hmm... erm ah okay", "okay"),
        ("Err, saya ada demam, emm, tiga hari.", "saya ada demam 3 hari"),
        ("dua puluh lima", "25"),
        ("seratus dua puluh", "120"),
        ("dua ribu lima ratus", "2500"),
        ("tiga belas", "13"),
        ("sebelas", "11"),
        ("tiga puluh tujuh perpuluhan lima", "37.5"),
        ("follow-up mana-mana", "follow up mana mana"),
        ("\u2018Don\u2019t\u2019 patients\u2019 care", "don't patients care"),
        ("SpO2 98%", "spo 2 98"),
        ("  MULTIPLE\n\tspaces  ", "multiple spaces"),
        ("ÉCOLE Straße", "école strasse"),
    ],
)
def test_normalize(raw: str, normalized: str) -> None:
    assert speech.normalize(raw) == normalized


def test_hand_checked_wer_and_cer() -> None:
    # sat -> sit is one substitution, the second "the" one deletion: 2 errors over 6 words.
    # By character: one substitution plus the four characters of "the " deleted, over 22 characters.
    m = _score("the cat sat on the mat", "the cat sit on mat")
    assert m["wer"] == pytest.approx(2 / 6)
    assert m["cer"] == pytest.approx(5 / 22)
    assert m["words_primary"] == 6
    assert m["empty_transcripts"] == 0


def test_short_cer_counts_spaces() -> None:
    # "ab cd" -> "ab ce": one substitution over five characters, the space counted.
    assert speech.error_rates("ab cd", "ab ce") == (0.5, 0.2)


def test_normalization_removes_formatting_differences() -> None:
    m = _score("Um, take five hundred milligrams, twice a day.", "take 500 milligrams twice a day")
    assert m["wer"] == 0.0
    assert m["cer"] == 0.0


def test_insertions_can_take_wer_over_one() -> None:
    assert _score("ya", "ya betul doktor saya faham")["wer"] == 4.0


@pytest.mark.parametrize(
    ("primary", "other", "wer", "empty"),
    [
        ("", "", 0.0, 2),
        ("Um. Uh.", "", 0.0, 2),  # empty once fillers and punctuation are gone
        ("", "patient is fine", 1.0, 1),
        ("patient is fine", "  ", 1.0, 1),
    ],
)
def test_empty_transcripts_are_explicit(primary: str, other: str, wer: float, empty: int) -> None:
    m = _score(primary, other)
    assert m["wer"] == wer
    assert m["cer"] == wer
    assert m["empty_transcripts"] == empty


def test_no_transcript_on_a_side_scores_nothing() -> None:
    assert _score("hello", None) == {}
    assert _score(None, "hello") == {}


def test_align_words() -> None:
    assert speech.align_words("The cat sat on the mat.", "the cat sit on mat") == [
        ("equal", ["the", "cat"], ["the", "cat"]),
        ("substitute", ["sat"], ["sit"]),
        ("equal", ["on"], ["on"]),
        ("delete", ["the"], []),
        ("equal", ["mat"], ["mat"]),
    ]
    assert speech.align_words("five", "5 days") == [("equal", ["5"], ["5"]), ("insert", [], ["days"])]
    assert speech.align_words("", "hello") == [("insert", [], ["hello"])]
    assert speech.align_words("hello", "um") == [("delete", ["hello"], [])]
    assert speech.align_words("", "") == []


def _corpus() -> list[tuple[str, str]]:
    pairs = []
    for seed in range(240):
        rng = Random(seed)
        lang: text.Lang = "ms" if seed % 2 else "en"
        reference = text.transcript(rng, lang, min_words=rng.choice((5, 40, 150)))
        hypothesis = apply_drift(
            reference, rng, drop_words=rng.choice((0.0, 0.05, 0.2)), substitution=rng.choice((0.0, 0.1, 0.4))
        )
        pairs.append((speech.normalize(reference), speech.normalize(hypothesis)))
    pairs += [("", ""), ("a b", ""), ("", "a b"), ("x", "y")]
    return pairs


def test_fast_path_equals_jiwer_on_a_corpus() -> None:
    corpus = _corpus()
    assert len(corpus) >= 200
    assert sum(ref != hyp for ref, hyp in corpus) > 100  # the drift actually changed most of them
    for reference, hypothesis in corpus:
        assert speech.error_rates(reference, hypothesis) == speech.error_rates_jiwer(reference, hypothesis)
