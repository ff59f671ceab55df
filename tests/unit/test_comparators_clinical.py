"""The clinical-fact comparison: typed facts in English, Malay, code-mixed text and transcripts, aligned
per entity, differences with kind, slot and severity; the scorer's metrics; SOAP sections."""

from __future__ import annotations

from random import Random

import pytest

from comparators.align import Difference
from comparators.clinical import MAX_CHARS, compare_clinical, score_clinical, soap_sections
from comparators.facts import extract
from comparators.numbers import read, words_to_numbers
from comparators.scoring import METRICS, Comparison, Side
from simulator import text
from simulator.drift import apply_drift


def side(text: str | None) -> Side:
    return Side(status=200, error=None, total_ms=100.0, ttfb_ms=None, model="m", text=text)


def clinical(primary: str | None, other: str | None) -> dict[str, float]:
    return score_clinical(Comparison("chat", side(primary), side(other), "candidate")).metrics


def diffs(primary: str, other: str) -> list[Difference]:
    return compare_clinical(primary, other).differences


def serious(primary: str, other: str) -> set[tuple[str, str, str]]:
    """(kind, slot, severity) of every critical or major difference."""
    return {(d.kind, d.slot, d.severity) for d in diffs(primary, other) if d.severity != "minor"}


def facts(sample: str, kind: str | None = None) -> list[tuple[str, str, str, str, str]]:
    return [
        (f.kind, f.entity, f.slot, f.value, f.unit)
        for f in extract(sample).facts
        if (kind is None or f.kind == kind) and f.slot != "status"
    ]


NOTE = (
    "S: Patient reports fever for 3 days. Denies chest pain. No shortness of breath.\n"
    "O: BP 130/85 mmHg, HR 82 bpm, Temp 37.8 °C, SpO2 98%.\n"
    "A: Acute upper respiratory tract infection.\n"
    "P: Paracetamol 500 mg three times a day for 3 days. Review in 1 week."
)
CRITICAL = "critical"


# --- numbers in words ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("fifteen", ["15"]),
        ("fifty", ["50"]),
        ("one hundred and twenty", ["120"]),
        ("two thousand five hundred", ["2500"]),
        ("thirty seven point eight", ["37.8"]),
        ("one forty", ["140"]),  # a blood pressure read out
        ("five five", ["5", "5"]),
        ("two and a half", ["2.5"]),
        ("lima belas", ["15"]),
        ("dua puluh", ["20"]),
        ("dua puluh lima", ["25"]),
        ("seratus empat puluh", ["140"]),
        ("seribu lima ratus", ["1500"]),
        ("tiga puluh tujuh perpuluhan lapan", ["37.8"]),
        ("satu setengah", ["1.5"]),
        ("setengah", ["0.5"]),
    ],
)
def test_number_words_in_both_languages(words: str, expected: list[str]) -> None:
    assert words_to_numbers(words.split()) == expected


def test_reading_keeps_a_map_to_the_original_characters() -> None:
    t = read("BP one forty over ninety, Temp 37.8℃")
    assert t.norm == "bp 140 over 90, temp 37.8°c"
    start = t.norm.index("140")
    assert t.original[slice(*t.span(start, start + 3))] == "one forty"
    start = t.norm.index("°c")
    assert t.original[slice(*t.span(start, start + 2))] == "℃"
    assert read("at this point the patient").norm == "at this point the patient"


# --- medications -----------------------------------------------------------------------------


def test_a_medication_statement_in_english() -> None:
    assert set(facts("Amoxicillin 500 mg PO TDS x 5/7, after food. Dispense 15 caps.")) == {
        ("medication", "amoxicillin", "drug", "amoxicillin", ""),
        ("medication", "amoxicillin", "quantity", "15", ""),
        ("medication", "amoxicillin", "frequency", "3/day", ""),
        ("medication", "amoxicillin", "duration", "5", "day"),
        ("medication", "amoxicillin", "timing", "after food", ""),
        ("medication", "amoxicillin", "route", "oral", ""),
        ("medication", "amoxicillin", "dose", "500", "mg"),
    }


def test_a_medication_statement_in_malay() -> None:
    got = {(f[2], f[3], f[4]) for f in facts("Parasetamol 2 biji 8 jam sekali selepas makan selama seminggu")}
    assert got >= {
        ("drug", "paracetamol", ""),
        ("dose", "2", "tablet"),
        ("frequency", "3/day", ""),
        ("timing", "after food", ""),
        ("duration", "7", "day"),
    }


def test_brands_and_synonyms_are_one_drug() -> None:
    assert diffs("Panadol 1 g QID", "Paracetamol 1000 mg four times a day") == []
    assert diffs("Acetaminophen 500 mg", "Paracetamol 500 mg") == []
    assert diffs("Augmentin 625 mg BD", "amoxicillin-clavulanate 625 mg twice daily") == []


@pytest.mark.parametrize(
    ("primary", "other"),
    [
        ("Amoxicillin 500 mg BD x 1 week", "amoxicillin 500mg twice daily for 7 days"),
        ("Ubat 2 biji tiga kali sehari", "Ubat 2 tablet 3 kali sehari"),
        ("Paracetamol 1 g every 6 hours", "Paracetamol 1000 mg q6h"),
        ("Salbutamol 2 puffs PRN", "Salbutamol two puffs when needed"),
        ("Metformin 500 mg BD", "Metformin 500 mg 12 jam sekali"),
        ("Panadol 500 mg, 2 tabs TDS", "Paracetamol 1 g three times a day"),  # the same amount
        ("Atenolol 100 mg: ambil setengah biji sekali sehari", "Atenolol 100mg, 1/2 tablet OD (50 mg)"),
        ("Cefuroxime 250 mg BD x 5/7", "Cefuroxime 250 mg twice a day for five days"),
        ("Omeprazole 20 mg OD before breakfast", "Omeprazole 20 mg once daily before food"),
        ("Amlodipine 10 mg ON", "Amlodipine 10 mg at night"),
    ],
)
def test_equivalent_medication_wording_is_no_difference(primary: str, other: str) -> None:
    assert serious(primary, other) == set()


@pytest.mark.parametrize(
    ("primary", "other", "slot"),
    [
        ("Paracetamol 500 mg TDS", "Paracetamol 50 mg TDS", "dose"),
        ("Levothyroxine 50 mcg OD", "Levothyroxine 50 mg OD", "dose"),  # the unit changes the amount
        ("Ceftriaxone 1 g IM stat", "Ceftriaxone 1 g IV stat", "route"),
        ("Omeprazole 20 mg orally", "Omeprazole 20 mg IV", "route"),
        ("Amlodipine 5 mg OD", "Amlodipine 5 mg BD", "frequency"),
        ("Parasetamol 1 g bila perlu", "Parasetamol 1 g 4 kali sehari", "frequency"),
        ("Metformin 500 mg dua kali sehari", "Metformin 500 mg tiga kali sehari", "frequency"),
        ("Hydroxyzine 25 mg ON", "Hydralazine 25 mg ON", "drug"),  # look-alike names
        ("Continue aspirin 100 mg OD", "Stop aspirin 100 mg", "status"),
    ],
)
def test_critical_medication_changes(primary: str, other: str, slot: str) -> None:
    assert ("contradiction", slot, CRITICAL) in serious(primary, other)
    assert clinical(primary, other)["clinical_ok"] == 0.0


def test_doses_swapped_between_two_drugs_are_two_contradictions() -> None:
    # The numbers as a set are unchanged; aligned per drug, each dose changed.
    found = diffs("Amlodipine 5 mg OD, metformin 500 mg BD", "Amlodipine 500 mg OD, metformin 5 mg BD")
    assert sorted((d.entity, d.slot, d.primary, d.other) for d in found) == [
        ("amlodipine", "dose", "5 mg", "500 mg"),
        ("metformin", "dose", "500 mg", "5 mg"),
    ]


def test_duration_timing_and_quantity_are_major() -> None:
    assert serious("Amoxicillin 500 mg TDS x 5/7", "Amoxicillin 500 mg TDS x 7/7") == {
        ("contradiction", "duration", "major")
    }
    assert serious("Metformin 500 mg BD selepas makan", "Metformin 500 mg BD sebelum makan") == {
        ("contradiction", "timing", "major")
    }
    assert clinical("Amoxicillin 500 mg TDS x 5/7", "Amoxicillin 500 mg TDS x 7/7")["clinical_ok"] == 1.0


def test_a_drug_left_out_is_an_omission_not_a_contradiction() -> None:
    metrics = clinical("Amlodipine 5 mg OD and atorvastatin 20 mg ON", "Amlodipine 5 mg OD")
    assert (metrics["clinical_omissions"], metrics["clinical_critical"], metrics["clinical_ok"]) == (1, 0, 1)
    assert serious("Amlodipine 5 mg OD and atorvastatin 20 mg ON", "Amlodipine 5 mg OD") == {
        ("omission", "drug", "major")
    }


def test_a_transcript_with_numbers_in_words() -> None:
    primary = "plan paracetamol five hundred milligrams three times a day for five days"
    assert serious(primary, "plan paracetamol 500 mg TDS for 5 days") == set()
    assert ("contradiction", "dose", CRITICAL) in serious(primary, primary.replace("five hundred", "fifty"))
    assert ("contradiction", "duration", "major") in serious(
        primary, primary.replace("five days", "fifteen days")
    )


def test_instructions_for_an_unnamed_medicine_are_compared() -> None:
    assert serious("Ambil ubat ini selepas makan.", "Ambil ubat ini sebelum makan.") == {
        ("contradiction", "timing", "major")
    }
    assert ("contradiction", "value", "major") in serious("Ubat batuk 10ml TDS.", "Ubat batuk 5ml TDS.")
    assert serious("Ubat ini untuk disapu pada kulit.", "Ubat ini untuk ditelan.") == {
        ("contradiction", "route", "major")
    }
    # how often a value is measured is no reading of it
    assert facts("Check capillary glucose four times daily.", "measure") == []


# --- allergies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("primary", "other"),
    [
        ("NKDA.", "No known drug allergies."),
        ("Tiada alahan ubat.", "NKDA"),
        ("Allergic to penicillin (rash).", "Penicillin allergy - rash."),
        ("Alahan kepada penisilin.", "Allergy: penicillin"),
    ],
)
def test_equivalent_allergy_statements(primary: str, other: str) -> None:
    assert serious(primary, other) == set()


@pytest.mark.parametrize(
    ("primary", "other"),
    [
        ("NKDA.", "Allergic to penicillin."),
        ("Tiada alahan ubat.", "Alahan kepada sulfa."),
        ("Allergic to penicillin.", "Allergic to aspirin."),
    ],
)
def test_a_changed_allergy_is_critical(primary: str, other: str) -> None:
    assert ("contradiction", "allergy", CRITICAL) in serious(primary, other)


def test_an_allergy_drug_is_not_a_prescription() -> None:
    assert facts("Allergic to penicillin. Give azithromycin 500 mg OD.", "medication")[0][1] == "azithromycin"
    assert (
        serious("Allergic to penicillin. Give azithromycin.", "Penicillin allergy. Azithromycin given.")
        == set()
    )


# --- findings and their assertion --------------------------------------------------------------


@pytest.mark.parametrize(
    ("primary", "other", "concept"),
    [
        ("No chest pain.", "Chest pain.", "chest_pain"),
        ("Patient denies fever.", "Patient has fever.", "fever"),
        ("Tiada demam.", "Demam.", "fever"),
        ("Demam: tiada.", "Demam: ada.", "fever"),
        ("Pesakit tidak sesak nafas.", "Pesakit sesak nafas.", "shortness_of_breath"),
        ("Denies chest pain, fever or cough.", "Denies chest pain or fever. Has cough.", "cough"),
        ("Fever: negative. Cough: yes.", "Fever: yes. Cough: yes.", "fever"),
        ("Batuk (-), selsema (+).", "Batuk (+), selsema (+).", "cough"),
        ("Chest pain - nil.", "Chest pain present.", "chest_pain"),
        ("Tonsils not enlarged.", "Tonsils enlarged.", "enlarged"),  # a finding no list names
        ("No fever but has cough.", "Has fever and cough.", "fever"),
        ("no fever no cough", "fever no cough", "fever"),  # a transcript without stops
    ],
)
def test_assertion_flips(primary: str, other: str, concept: str) -> None:
    found = [d for d in diffs(primary, other) if d.kind == "contradiction" and d.slot == "assertion"]
    assert [d.entity for d in found] == [concept]
    assert found[0].severity == CRITICAL
    assert clinical(primary, other)["negation_flips"] == 1.0


@pytest.mark.parametrize(
    ("primary", "other"),
    [
        ("No fever.", "Denies fever."),
        ("Tiada demam.", "Tidak demam."),
        ("Afebrile.", "No fever."),
        ("Demam: tiada", "Tiada demam"),
        ("Pesakit menafikan sakit dada.", "Tiada sakit dada."),
        ("No chest pain. Chest clear.", "Chest clear."),  # "chest" alone is not the finding
        ("No fever, chest clear.", "Chest clear. No fever."),  # an item that judges ends the list
        ("No fever and has a cough.", "Has a cough, no fever."),
        ("No fever but cough.", "Cough but no fever."),
        ("Denies fever or vomiting.", "No vomiting or fever."),
        ("Denies fever. Return if fever develops.", "No fever. Come back if you get a fever."),
        ("DVT ruled out on Doppler.", "Doppler showed no DVT."),
        ("Meningism was not observed.", "No meningism."),
        ("Pneumothorax has been ruled out on CXR.", "CXR: no pneumothorax."),
        ("Negative for malaria and dengue.", "Malaria negative, dengue negative."),
        ("pesakit tak ada demam tak ada batuk", "Pesakit tiada demam dan tiada batuk."),
        ("Antibiotics not indicated.", "No antibiotics."),
        (NOTE, NOTE),
    ],
)
def test_kept_assertions_are_no_difference(primary: str, other: str) -> None:
    assert serious(primary, other) == set()


def test_possible_historical_and_family_findings() -> None:
    assert serious("Suspected dengue.", "Dengue fever.") == {("contradiction", "assertion", "major")}
    assert serious("Family history of diabetes.", "Known diabetes.") == {
        ("contradiction", "assertion", CRITICAL)
    }
    assert serious("History of asthma.", "No asthma.") == {("contradiction", "assertion", CRITICAL)}
    assert serious("Kemungkinan denggi.", "Disyaki denggi.") == set()
    assert serious("A: ? PTB.", "Disyaki PTB.") == set()  # "?" opening a clause is a query
    assert serious("Any fever? No.", "No fever.") == set()  # a "?" that ends a question is not


def test_test_results() -> None:
    assert serious("Dengue NS1 positive.", "Dengue NS1 negative.") == {("contradiction", "result", CRITICAL)}
    assert serious("UPT negative.", "Urine pregnancy test: negative.") == set()
    assert serious("HIV non-reactive.", "HIV tidak reaktif.") == set()
    assert ("contradiction", "result", CRITICAL) in serious("HBsAg tidak reaktif.", "HBsAg reaktif.")


# --- vital signs, labs, laterality, follow-up ------------------------------------------------------


def test_vitals_and_labs_in_both_languages() -> None:
    assert {f[1]: f[3] for f in facts("TD 140/90, nadi 88, suhu 37.8 darjah, SpO2 97%", "measure")} == {
        "bp": "140/90",
        "pulse": "88",
        "temperature": "37.8",
        "spo2": "97",
    }
    assert serious("BP 130/85, HbA1c 7.2%", "Blood pressure 130/85 mmHg; HbA1c 7.2 %") == set()
    assert serious("blood pressure one forty over ninety", "BP 140/90") == set()
    assert serious("BP 130/85", "BP 130/95") == {("contradiction", "value", CRITICAL)}
    assert serious("HbA1c 7.2%", "HbA1c 8.2%") == {("contradiction", "value", CRITICAL)}
    assert serious("K 3.1 mmol/L", "Potassium 5.1 mmol/L") == {("contradiction", "value", CRITICAL)}


def test_side_and_site() -> None:
    assert serious("Pain in the left knee.", "Pain in the right knee.") == {
        ("contradiction", "side", CRITICAL)
    }
    assert serious("Sakit lutut kiri.", "Sakit lutut kanan.") == {("contradiction", "side", CRITICAL)}
    assert serious("Left knee swelling.", "Left ankle swelling.") == {("contradiction", "site", CRITICAL)}
    assert serious("Left knee pain.", "Sakit lutut kiri.") == set()
    assert serious("Right otitis media.", "Otitis media, right ear.") == set()
    assert serious("Turn right at the junction.", "All right, see you.") == set()  # no side of the body


def test_follow_up_intervals() -> None:
    assert serious("TCA 2/52.", "Review in 2 weeks.") == set()
    assert serious("Datang semula dalam seminggu.", "Review in 1 week.") == set()
    assert serious("Review in 1 week.", "Review in 1 month.") == {("contradiction", "followup", "major")}


# --- notes and answers as they are written -----------------------------------------------------------


@pytest.mark.parametrize(
    ("primary", "other"),
    [
        (
            "Pesakit mengadu sakit kepala sejak 2 hari. Tiada muntah. "
            "Beri Panadol 1g 4 kali sehari bila perlu.",
            "Sakit kepala x 2/7, muntah (-). Plan: PCM 1 g QID PRN.",
        ),
        (
            "Tekanan darah 150/95. Mula Amlodipine 5mg sekali sehari.",
            "BP 150/95 mmHg. Start amlodipine 5 mg OD.",
        ),
        (
            "the patient is a fifty two year old man with chest pain no shortness of breath",
            "52M, chest pain, no SOB.",
        ),
        ("Mother has hypertension. No family history of diabetes.", "FHx: mother HPT; no DM in family."),
        ("Insulin: Actrapid 8 units before each meal.", "Actrapid 8 u before meals."),
        ("Dia tiada sejarah penyakit jantung atau strok.", "No history of heart disease or stroke."),
        (
            "okay so um blood pressure is one thirty two over eighty four pulse seventy eight",
            "BP 132/84, pulse 78.",
        ),
        (
            "You can take paracetamol 500mg, 1-2 tablets every 4-6 hours as needed, "
            "but do not exceed 8 tablets.",
            "Paracetamol 500 mg: take 1 to 2 tablets every 4 to 6 hours when needed; no more than 8 tablets.",
        ),
        ("Ear exam: right TM bulging, left TM normal.", "Right tympanic membrane bulging; left normal."),
    ],
)
def test_paraphrases_as_clinicians_and_models_write_them(primary: str, other: str) -> None:
    assert serious(primary, other) == set()


@pytest.mark.parametrize(
    ("primary", "other", "slot"),
    [
        ("Tiada sejarah strok.", "Ada sejarah strok.", "assertion"),
        ("Give oral prednisolone 1 mg/kg once daily.", "Give oral prednisolone 2 mg/kg once daily.", "dose"),
        ("Ear exam: right TM bulging.", "Ear exam: left TM bulging.", "side"),
        ("Continue warfarin; INR 2.6.", "Stop warfarin; INR 2.6.", "status"),
        ("Pesakit tiada alahan ubat.", "Pesakit alah kepada aspirin.", "allergy"),
        (
            "okay so blood pressure is one thirty two over eighty four",
            "BP 123/84.",
            "value",
        ),
    ],
)
def test_changes_as_clinicians_and_models_write_them(primary: str, other: str, slot: str) -> None:
    assert ("contradiction", slot, CRITICAL) in serious(primary, other)


# --- the scorer ----------------------------------------------------------------------------------


def test_metrics_keep_contradictions_omissions_and_additions_apart() -> None:
    metrics = clinical(
        "Paracetamol 500 mg TDS. Amlodipine 5 mg OD. NKDA.",
        "Paracetamol 50 mg TDS. NKDA. Ibuprofen 400 mg TDS and omeprazole 20 mg OD.",
    )
    assert set(metrics) <= set(METRICS)
    assert metrics["clinical_critical"] >= 1
    assert metrics["clinical_ok"] == 0.0
    assert metrics["clinical_unscorable"] == 0.0
    assert metrics["clinical_omissions"] + metrics["clinical_additions"] >= 2
    assert metrics["fact_mismatches"] >= metrics["clinical_contradictions"] >= metrics["clinical_critical"]


def test_findings_carry_severity_slot_and_excerpts() -> None:
    result = score_clinical(
        Comparison("chat", side("Paracetamol 500 mg TDS."), side("Paracetamol 50 mg TDS."), "candidate")
    )
    assert [(f.kind, f.where, f.primary, f.other) for f in result.findings] == [
        ("critical_contradiction", "dose: paracetamol", "Paracetamol 500 mg TDS.", "Paracetamol 50 mg TDS.")
    ]


def test_spans_point_into_the_original_text() -> None:
    primary = "BP one forty over ninety. Plan: Parasetamol lima ratus miligram"
    other = "BP 150/90. Plan: Parasetamol 500 mg"
    found = {d.slot: d for d in diffs(primary, other)}
    bp = found["value"]
    assert bp.primary_span is not None
    assert bp.other_span is not None
    assert primary[slice(*bp.primary_span)] == "BP one forty over ninety"
    assert other[slice(*bp.other_span)] == "BP 150/90"
    assert "dose" not in found  # "lima ratus miligram" is 500 mg


def test_identical_and_reworded_notes_are_clinically_ok() -> None:
    for seed in range(40):
        note = text.soap_note(Random(seed), "en" if seed % 2 else "ms")
        reworded = apply_drift(note, Random(seed), substitution=0.5)
        assert clinical(note, note)["clinical_ok"] == 1.0
        assert clinical(note, reworded)["clinical_ok"] == 1.0, (note, reworded)


def test_drifted_negations_and_numbers_are_caught() -> None:
    """Every changed number or negation is a critical or a major difference (a changed follow-up
    interval is major: docs/CLINICAL.md)."""
    caught = 0
    changed = 0
    for seed in range(40):
        note = text.soap_note(Random(seed), "en" if seed % 2 else "ms")
        drifted = apply_drift(note, Random(seed), numbers=0.3, negation=0.5)
        if drifted != note:
            changed += 1
            caught += bool(serious(note, drifted))
    assert changed > 30
    assert caught == changed


# --- structured outputs ----------------------------------------------------------------------------


def tool_side(arguments: dict[str, object]) -> Side:
    calls = [{"type": "function", "name": "prescribe", "arguments": arguments}]
    return Side(status=200, error=None, total_ms=1.0, ttfb_ms=None, model="m", text=None, json=calls)


def test_a_dose_inside_tool_call_arguments_counts() -> None:
    primary = tool_side({"drug": "amoxicillin", "dose_mg": 500, "frequency": "TDS", "days": 5})
    changed = tool_side({"drug": "amoxicillin", "dose_mg": 250, "frequency": "TDS", "days": 5})
    same = tool_side({"drug": "Amoxil", "dose": "0.5 g", "frequency": "three times a day", "days": 5})
    result = score_clinical(Comparison("chat", primary, changed, "candidate"))
    assert result.metrics["clinical_ok"] == 0.0
    assert result.findings[0].where == "dose: amoxicillin"
    assert score_clinical(Comparison("chat", primary, same, "candidate")).metrics["clinical_ok"] == 1.0


def test_json_answers_are_read_field_by_field() -> None:
    primary = Side(200, None, 1.0, None, "m", text='{"allergies": ["penicillin"], "bp": "130/85"}',
                   json={"allergies": ["penicillin"], "bp": "130/85"})  # fmt: skip
    other = Side(200, None, 1.0, None, "m", text='{"allergies": ["sulfa"], "bp": "130/85"}',
                 json={"allergies": ["sulfa"], "bp": "130/85"})  # fmt: skip
    found = score_clinical(Comparison("chat", primary, other, "candidate")).findings
    assert [f.where for f in found] == ["allergy: allergy"]


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("primary", "other", "reason"),
    [
        ("Paracetamol 1 g", "", "the candidate's answer is empty"),
        ("   ", "Paracetamol 1 g", "the primary's answer is empty"),
        (
            "Paracetamol 1 g",
            "x" * (MAX_CHARS + 1),
            "the candidate's answer is longer than 200,000 characters",
        ),
        ("Paracetamol 1 g", "\x00\x01\x02\x03\x04\x05" * 50, "the candidate's answer is not text"),
    ],
)
def test_unreadable_input_is_unscorable_with_its_reason(primary: str, other: str, reason: str) -> None:
    result = score_clinical(Comparison("chat", side(primary), side(other), "candidate"))
    assert result.metrics == {"clinical_unscorable": 1.0}  # never a silent clinical_ok
    assert result.findings[0].kind == "clinical_unscorable"
    assert result.findings[0].primary.startswith(reason)


def test_long_and_mixed_script_texts_are_read_without_error() -> None:
    long_note = NOTE * 400  # ~100,000 characters
    assert clinical(long_note, long_note)["clinical_ok"] == 1.0
    mixed = "病人发烧 3 天。Pesakit demam. Paracetamol 500 mg TDS. 🙂 Ω≈ç√"
    assert clinical(mixed, mixed.replace("500", "50"))["clinical_ok"] == 0.0


def test_nothing_when_a_side_has_no_text() -> None:
    assert clinical(NOTE, None) == {}
    assert clinical(None, NOTE) == {}


# --- SOAP ----------------------------------------------------------------------------------------


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
