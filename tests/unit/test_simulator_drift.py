"""Drift of a candidate's text: nothing at rate 0, the right kind of change above it."""

import re
from random import Random

import pytest

from simulator import drift, text

NOTE = (
    "S: Patient reports fever for 3 days. Denies chest pain. No shortness of breath.\n"
    "O: BP 130/85 mmHg, HR 82 bpm, Temp 37.8 °C, SpO2 98%.\n"
    "A: Acute upper respiratory tract infection.\n"
    "P: Paracetamol 500 mg three times a day. Amoxicillin 250 mg. Review in 3 days."
)
NOTA = "Pesakit menafikan sakit dada. Tiada demam. Tidak sesak nafas. Pesakit mengadu batuk."


@pytest.mark.parametrize("seed", range(5))
def test_all_rates_zero_is_identity(seed: int) -> None:
    for sample in (NOTE, NOTA, text.soap_note(Random(seed), "ms"), "  odd  spacing \n here "):
        assert drift.apply_drift(sample, Random(seed)) == sample


def test_drift_is_deterministic_for_a_seed() -> None:
    rates = {"substitution": 0.3, "drop_words": 0.1, "numbers": 0.3, "negation": 0.3}
    assert drift.apply_drift(NOTE, Random(9), **rates) == drift.apply_drift(NOTE, Random(9), **rates)
    outputs = {drift.apply_drift(NOTE, Random(seed), **rates) for seed in range(10)}
    assert len(outputs) > 5


def test_number_drift_changes_a_dose() -> None:
    drifted = drift.change_numbers(NOTE, Random(1), 1.0)
    assert "Paracetamol 500 mg" not in drifted
    assert re.search(r"Paracetamol \d+(\.\d+)? mg", drifted)
    # only numbers move: with the digits taken out, the note reads the same
    assert re.sub(r"[\d.]+", "#", drifted) == re.sub(r"[\d.]+", "#", NOTE)


def test_number_drift_leaves_names_with_digits_alone() -> None:
    assert "SpO2" in drift.change_numbers(NOTE, Random(2), 1.0)


@pytest.mark.parametrize("number", ["500", "37.8", "0.5", "250", "7", "12.5", "130"])
def test_mutate_number_always_changes_it(number: str) -> None:
    for seed in range(50):
        new = drift.mutate_number(number, Random(seed))
        assert new != number
        assert float(new) >= 0
        assert not (len(new) > 1 and new[0] == "0" and new[1] != ".")


def test_mutate_number_makes_the_classic_slips() -> None:
    slips = {drift.mutate_number("500", Random(seed)) for seed in range(200)}
    assert "50" in slips
    temps = {drift.mutate_number("37.8", Random(seed)) for seed in range(200)}
    assert "38.7" in temps


def test_negation_drift_flips_english_negations() -> None:
    flipped = drift.flip_negations(NOTE, Random(0), 1.0)
    assert "Denies chest pain" not in flipped
    assert "Reports chest pain" in flipped
    assert "Shortness of breath." in flipped
    assert "Patient denies fever" in flipped


def test_negation_drift_flips_malay_negations() -> None:
    flipped = drift.flip_negations(NOTA, Random(0), 1.0)
    assert flipped == ("Pesakit mengadu sakit dada. Ada demam. Sesak nafas. Pesakit menafikan batuk.")


def test_negation_drift_never_undoes_itself() -> None:
    assert drift.flip_negations("Tidak mengalami muntah.", Random(0), 1.0) == "Mengalami muntah."


def test_substitution_uses_synonyms_and_keeps_case() -> None:
    swapped = drift.substitute_words("Fever and pain, patient advised.", Random(0), 1.0)
    words = swapped.split()
    assert words[0] in ("Pyrexia", "Temperature")
    assert swapped != "Fever and pain, patient advised."
    assert swapped.endswith(".")


def test_dropping_words_loses_about_the_rate() -> None:
    sample = text.transcript(Random(1), "en", min_words=1000)
    kept = drift.lose_words(sample, Random(1), 0.15)
    ratio = len(kept.split()) / len(sample.split())
    assert 0.80 < ratio < 0.90
    assert set(kept.split()) <= set(sample.split())


def test_dropping_words_keeps_line_breaks() -> None:
    kept = drift.lose_words(NOTE, Random(3), 0.3)
    assert kept.count("\n") == NOTE.count("\n")
    assert not kept.startswith(" ")
    assert drift.lose_words(NOTE, Random(3), 1.0).strip() == ""
