"""The simulator's synthetic clinical text: deterministic, varied, bilingual."""

import re
from random import Random

import pytest

from simulator import text
from simulator.vocab import CONDITIONS, Condition


@pytest.mark.parametrize("lang", ["en", "ms"])
def test_soap_note_is_the_same_for_the_same_seed(lang: text.Lang) -> None:
    assert text.soap_note(Random(7), lang) == text.soap_note(Random(7), lang)


def test_different_seeds_give_varied_notes() -> None:
    notes = {text.soap_note(Random(seed), "en") for seed in range(60)}
    assert len(notes) == 60


def test_soap_note_has_sections_vitals_and_a_dose() -> None:
    note = text.soap_note(Random(3), "en")
    lines = note.splitlines()
    assert [line[:2] for line in lines] == ["S:", "O:", "A:", "P:"]
    assert re.search(r"BP \d{2,3}/\d{2,3} mmHg", note)
    assert re.search(r"HR \d+ bpm", note)
    assert re.search(r"Temp \d{2}\.\d °C", note)
    assert re.search(r"\b\d+(\.\d+)? (mg|g|mcg|ml|sachet|sprays)\b|a thin layer", lines[3])


def test_english_notes_carry_negations() -> None:
    negated = [
        note
        for seed in range(20)
        if re.search(r"\b(Denies|denies|No)\b", note := text.soap_note(Random(seed), "en"))
    ]
    assert len(negated) == 20


def test_malay_note_is_in_malay() -> None:
    note = text.soap_note(Random(5), "ms")
    assert "Pesakit" in note
    assert "Suhu" in note
    assert re.search(r"\b(Tiada|menafikan|Tidak)\b", note)
    assert "Denies" not in note


def test_a_malay_prompt_gets_a_malay_answer() -> None:
    answer = text.answer_for_prompt(Random(1), "Pesakit demam dan batuk sejak 3 hari. Apa rawatan?")
    assert text.detect_language(answer) == "ms"
    assert re.search(r"\b(ialah|dengan|Rujuk|Rawatan|Boleh)\b", answer)


def test_an_english_prompt_gets_an_english_answer() -> None:
    answer = text.answer_for_prompt(Random(1), "What is the treatment for gout?")
    assert text.detect_language("What is the treatment for gout?") == "en"
    assert "gout" in answer.lower()
    assert " dan " not in answer


def test_a_soap_prompt_gets_a_soap_note() -> None:
    answer = text.answer_for_prompt(Random(2), "Write a SOAP note for this consultation.")
    assert answer.startswith("S: ")
    assert "\nP: " in answer


def test_a_guideline_prompt_gets_a_cpg_snippet() -> None:
    answer = text.answer_for_prompt(Random(2), "Which CPG covers dengue?")
    assert answer.startswith("CPG Management of Suspected dengue fever")


def test_condition_follows_the_prompt() -> None:
    assert text.condition_for("suspected DENGUE with low platelet") is not None
    assert text.condition_for("weather today") is None


def test_transcript_is_deterministic_and_long_enough() -> None:
    first = text.transcript(Random(11), "ms", min_words=300)
    assert first == text.transcript(Random(11), "ms", min_words=300)
    assert len(first.split()) >= 300
    assert first != text.transcript(Random(12), "ms", min_words=300)
    assert "doktor" in first


def test_consultation_has_doctor_and_patient_turns() -> None:
    turns = text.consultation(Random(4), "en")
    assert any(turn.endswith("?") for turn in turns)
    assert any(turn.startswith("No") for turn in turns)
    assert any(re.search(r"\d+ (mg|g|mcg|ml)", turn) for turn in turns)


@pytest.mark.parametrize("condition", CONDITIONS, ids=lambda c: c.key)
@pytest.mark.parametrize("lang", ["en", "ms"])
def test_every_condition_generates_in_both_languages(condition: Condition, lang: text.Lang) -> None:
    rng = Random(0)
    assert condition.diagnosis[0 if lang == "en" else 1] in text.soap_note(rng, lang, condition)
    assert text.chat_answer(rng, lang, condition)
    assert text.guideline_snippet(rng, lang, condition).startswith("CPG ")
    assert len(text.consultation(rng, lang, 50, condition)) >= 10
