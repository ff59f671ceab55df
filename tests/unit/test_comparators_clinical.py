"""Clinical scorer: doses and vitals with units, negation flips in English and Malay, SOAP sections."""

from random import Random

import pytest

from comparators.clinical import (
    compare_facts,
    compare_negations,
    extract_facts,
    score_clinical,
    soap_sections,
)
from comparators.scoring import METRICS, Comparison, Side
from simulator import text
from simulator.drift import apply_drift


def side(text: str | None) -> Side:
    return Side(status=200, error=None, total_ms=100.0, ttfb_ms=None, model="m", text=text)


def clinical(primary: str | None, other: str | None) -> dict[str, float]:
    return score_clinical(Comparison("chat", side(primary), side(other), "candidate")).metrics


NOTE = (
    "S: Patient reports fever for 3 days. Denies chest pain. No shortness of breath.\n"
    "O: BP 130/85 mmHg, HR 82 bpm, Temp 37.8 °C, SpO2 98%.\n"
    "A: Acute upper respiratory tract infection.\n"
    "P: Paracetamol 500 mg three times a day for 3 days. Review in 1 week."
)


# --- facts -----------------------------------------------------------------------------------


def facts(sample: str) -> list[tuple[str, str]]:
    return [(f.unit, f.value) for f in extract_facts(sample)]


def test_facts_of_a_note() -> None:
    assert facts(NOTE) == [
        ("day", "3"), ("mmhg", "130/85"), ("/min", "82"), ("°c", "37.8"), ("%", "98"),
        ("mg", "500"), ("/day", "3"), ("day", "3"), ("day", "7"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("1 g", [("mg", "1000")]),
        ("200 mcg", [("mg", "0.2")]),
        ("200 µg", [("mg", "0.2")]),
        ("12.5mg", [("mg", "12.5")]),
        ("1,000 mg", [("mg", "1000")]),
        ("10 mL", [("ml", "10")]),
        ("1 L", [("ml", "1000")]),
        ("10 IU", [("units", "10")]),
        ("0.5 units/kg/day", [("units/kg/day", "0.5")]),
        ("500 mg/5 ml", [("mg", "500"), ("ml", "5")]),
        ("1/2 tablet", [("tablet", "0.5")]),
        ("1-2 tabs", [("tablet", "1-2")]),
        ("500 to 1000 mg", [("mg", "500-1000")]),
        ("2 puffs", [("puff", "2")]),
        ("2 biji", [("tablet", "2")]),
        ("3 drops", [("drop", "3")]),
        ("37.8C", [("°c", "37.8")]),
        ("38 ℃", [("°c", "38")]),
        ("RR 18/min", [("/min", "18")]),
        ("tekanan darah 140/90", [("mmhg", "140/90")]),
        ("SpO2 98%", [("%", "98")]),
        ("45-year-old", [("year", "45")]),
        ("TDS", [("/day", "3")]),
        ("bd", [("/day", "2")]),
        ("PRN", [("/day", "prn")]),
        ("three times a day", [("/day", "3")]),
        ("3x/day", [("/day", "3")]),
        ("every 8 hours", [("/day", "3")]),
        ("q6h", [("/day", "4")]),
        ("4-6 hourly", [("/day", "4-6")]),
        ("dua kali sehari", [("/day", "2")]),
        ("tiga kali sehari", [("/day", "3")]),
        ("setiap 8 jam", [("/day", "3")]),
        ("selama 5 hari", [("day", "5")]),
        ("SpO2 and vitamin C, 12/05/2024, recommendation 12", []),
    ],
)
def test_units_and_schedules(sample: str, expected: list[tuple[str, str]]) -> None:
    assert facts(sample) == expected


def test_a_changed_dose_is_one_mismatch() -> None:
    mismatches, primary, findings = compare_facts("Paracetamol 500 mg TDS", "Paracetamol 50 mg tds")
    assert (mismatches, primary) == (1, 2)
    assert [(f.kind, f.where, f.primary, f.other) for f in findings] == [
        ("number_mismatch", "mg", "Paracetamol 500 mg TDS", "Paracetamol 50 mg tds")
    ]


def test_equivalent_spellings_are_not_mismatches() -> None:
    assert compare_facts("Paracetamol 1 g every 8 hours", "Paracetamol 1000 mg three times a day")[0] == 0
    assert compare_facts("Amoxicillin 500 MG BD x 1 week", "amoxicillin 500mg twice daily x 7 days")[0] == 0
    assert compare_facts("Ubat 2 biji tiga kali sehari", "Ubat 2 tablet 3 kali sehari")[0] == 0


def test_a_missing_fact_is_a_mismatch() -> None:
    mismatches, primary, findings = compare_facts("HR 82 bpm, RR 18/min", "HR 82 bpm")
    assert (mismatches, primary) == (1, 2)
    assert findings[0].where == "/min"
    assert findings[0].other == ""


def test_paracetamol_500_vs_50_is_flagged() -> None:
    metrics = clinical("Paracetamol 500 mg", "Paracetamol 50 mg")
    assert metrics == {
        "fact_mismatches": 1.0,
        "facts_primary": 1.0,
        "negation_flips": 0.0,
        "clinical_ok": 0.0,
    }


def test_blood_pressure_change_is_flagged() -> None:
    result = score_clinical(Comparison("chat", side("BP 130/85 mmHg"), side("BP 130/95 mmHg"), "candidate"))
    assert result.metrics["fact_mismatches"] == 1.0
    assert [(f.where, f.primary, f.other) for f in result.findings] == [
        ("mmhg", "BP 130/85 mmHg", "BP 130/95 mmHg")
    ]


# --- negation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("primary", "other", "concept"),
    [
        ("No chest pain.", "Chest pain.", "chest pain"),
        ("Patient denies fever.", "Patient has fever.", "fever"),
        ("Tiada demam.", "Demam.", "demam"),
        ("Pesakit tidak sesak nafas.", "Pesakit sesak nafas.", "sesak nafas"),
        ("Tidak mengalami muntah.", "Mengalami muntah.", "muntah"),
        ("No history of asthma.", "History of asthma.", "asthma"),
        ("Tonsils not enlarged.", "Tonsils enlarged.", "enlarged"),
        ("No chest pain on exertion.", "Chest pain on exertion.", "chest pain on exertion"),
        ("Has cough.", "Denies cough.", "cough"),  # the other way round
        # a hypothetical both sides share does not hide the flip
        ("Denies fever. Review if fever persists.", "Reports fever. Review if fever persists.", "fever"),
    ],
)
def test_negation_flips(primary: str, other: str, concept: str) -> None:
    flips = compare_negations(primary, other)
    assert [f.where for f in flips] == [concept]
    assert flips[0].kind == "negation_flip"
    metrics = clinical(primary, other)
    assert (metrics["negation_flips"], metrics["clinical_ok"]) == (1.0, 0.0)


@pytest.mark.parametrize(
    ("primary", "other"),
    [
        ("No fever.", "Denies fever."),
        ("Tiada demam.", "Tidak demam."),
        ("Pesakit menafikan sakit dada.", "Tiada sakit dada."),
        ("No chest pain. Chest clear.", "Chest clear."),  # "chest" alone is not the finding
        ("No fever, cough for 3 days.", "Cough for 3 days, no fever."),  # a comma ends the scope
        ("No fever and has a cough.", "Has a cough, no fever."),
        ("No fever but cough.", "Cough but no fever."),
        ("Denies fever or vomiting.", "No vomiting or fever."),
        ("No, doctor.", "Fever? No."),
        (NOTE, NOTE),
    ],
)
def test_polarity_kept_is_not_a_flip(primary: str, other: str) -> None:
    assert compare_negations(primary, other) == []


def test_identical_and_reworded_notes_are_clinically_ok() -> None:
    for seed in range(40):
        note = text.soap_note(Random(seed), "en" if seed % 2 else "ms")
        reworded = apply_drift(note, Random(seed), substitution=0.5)
        assert clinical(note, note)["clinical_ok"] == 1.0
        assert clinical(note, reworded)["clinical_ok"] == 1.0, (note, reworded)


def test_drifted_negations_and_numbers_are_caught() -> None:
    caught = 0
    changed = 0
    for seed in range(40):
        note = text.soap_note(Random(seed), "en" if seed % 2 else "ms")
        drifted = apply_drift(note, Random(seed), numbers=0.3, negation=0.5)
        if drifted != note:
            changed += 1
            caught += clinical(note, drifted)["clinical_ok"] == 0.0
    assert changed > 30
    assert caught == changed


# --- SOAP ------------------------------------------------------------------------------------


def test_soap_sections_are_read() -> None:
    assert list(soap_sections(NOTE)) == ["S", "O", "A", "P"]
    assert soap_sections(NOTE)["A"] == "Acute upper respiratory tract infection."
    malay = "**Subjektif:** demam\n**Objektif:** suhu 38 °C\n## Penilaian\nURTI\nPelan: rehat"
    assert soap_sections(malay) == {"S": "demam", "O": "suhu 38 °C", "A": "URTI", "P": "rehat"}
    assert soap_sections("Q: what dose?\nA: 500 mg") == {}  # one section is not a SOAP note


def test_missing_plan_section() -> None:
    without_plan = NOTE.rsplit("\nP:", 1)[0]
    result = score_clinical(Comparison("chat", side(NOTE), side(without_plan), "candidate"))
    assert result.metrics["soap_sections_missing"] == 1.0
    assert result.metrics["soap_min_section_similarity"] == 1.0
    missing = [f for f in result.findings if f.kind == "missing_section"]
    assert [(f.where, f.other) for f in missing] == [("P", "")]
    assert missing[0].primary.startswith("Paracetamol 500 mg")


def test_section_similarity_is_the_lowest_shared_section() -> None:
    changed = NOTE.replace("A: Acute upper respiratory tract infection.", "A: Viral fever.")
    metrics = clinical(NOTE, changed)
    assert metrics["soap_sections_missing"] == 0.0
    assert metrics["soap_min_section_similarity"] == 0.0  # no word of A in common


def test_no_soap_metrics_for_plain_answers() -> None:
    metrics = clinical("Take paracetamol 500 mg.", "Take paracetamol 500 mg.")
    assert metrics == {
        "fact_mismatches": 0.0,
        "facts_primary": 1.0,
        "negation_flips": 0.0,
        "clinical_ok": 1.0,
    }


def test_nothing_when_a_side_has_no_text() -> None:
    assert clinical(NOTE, None) == {}
    assert clinical(None, NOTE) == {}


def test_only_contract_metrics() -> None:
    metrics = clinical(NOTE, NOTE.replace("500 mg", "50 mg").replace("Denies", "Reports"))
    assert set(metrics) <= set(METRICS)
    assert metrics["fact_mismatches"] == 1.0
    assert metrics["negation_flips"] == 1.0
