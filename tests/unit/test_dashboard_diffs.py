"""How the Pair page lays out a pair's differences (dashboard/diffs.py), reusing the comparators."""

from __future__ import annotations

from dashboard.diffs import (
    clinical_view,
    json_rows,
    request_text,
    side_by_side_html,
    tokens,
    transcript_alignment,
    word_diff,
)


def test_a_changed_dose_is_marked_as_a_number() -> None:
    chunks = word_diff("Paracetamol 500 mg twice daily.", "Paracetamol 50 mg twice daily.")
    changed = [c for c in chunks if c.op != "equal"]
    assert len(changed) == 1
    assert changed[0].primary.strip() == "500"
    assert changed[0].candidate.strip() == "50"
    assert changed[0].marks == {"number"}


def test_a_flipped_negation_is_marked() -> None:
    chunks = word_diff("Patient denies chest pain.", "Patient reports chest pain.")
    changed = [c for c in chunks if c.op != "equal"]
    assert [c.marks for c in changed] == [frozenset({"negation"})]
    malay = [c for c in word_diff("Tiada demam.", "Ada demam.") if c.op != "equal"]
    assert malay[0].marks == {"negation"}


def test_case_and_spacing_alone_are_no_difference() -> None:
    assert all(
        c.op == "equal" for c in word_diff("Fever  for 3 days.\nNo cough.", "fever for 3 days. no cough.")
    )


def test_the_html_escapes_what_the_models_wrote() -> None:
    left, right = side_by_side_html(word_diff("Use <b>500 mg</b>", "Use <script>alert(1)</script> 50 mg"))
    assert "<script" not in right
    assert "<b>" not in left
    assert "&lt;" in right
    assert "Use &lt;<del>b</del>&gt;" in left
    assert '<del class="number"' in left
    assert '<ins class="number"' in right


def test_tokens_keep_the_text_whole() -> None:
    text = "BP 130/85 mmHg; temp 38.5°C — don't wait.\n\nPlan: review in 2/52."
    assert "".join(tokens(text)) == text


def test_transcripts_are_aligned_as_wer_counts_them() -> None:
    a = transcript_alignment("the patient has a fever of thirty eight", "the patient has fever of 38 degrees")
    # "thirty eight" and "38" are the same after normalization: only "a" is missing, "degrees" extra.
    assert (a.substitutions, a.deletions, a.insertions) == (0, 1, 1)
    assert a.reference_words == 7
    assert a.wer == 2 / 7
    assert "<del>a</del>" in a.html
    assert "<ins>degrees</ins>" in a.html


def test_clinical_view_comes_from_the_clinical_comparator() -> None:
    primary, candidate = "Amoxicillin 500 mg TDS. No fever.", "Amoxicillin 250 mg TDS. Fever present."
    view = clinical_view(primary, candidate)
    assert sorted((r.severity, r.kind, r.slot, r.entity) for r in view.rows) == [
        ("critical", "contradiction", "assertion", "fever"),
        ("critical", "contradiction", "dose", "amoxicillin"),
    ]
    dose = next(r for r in view.rows if r.slot == "dose")
    assert (dose.primary, dose.candidate) == ("500 mg", "250 mg")
    # Each difference is marked where it stands on both sides, titled with its severity and kind.
    assert '<mark class="critical contradiction" title="' in view.primary_html
    assert ">500 mg<sup>" in view.primary_html
    assert ">250 mg<sup>" in view.candidate_html
    assert ">fever<sup>" in view.primary_html
    assert ">Fever<sup>" in view.candidate_html
    assert view.unscorable is None


def test_clinical_view_escapes_and_says_why_it_cannot_read() -> None:
    view = clinical_view("<b>Paracetamol</b> 1 g", "<b>Paracetamol</b> 500 mg")
    assert "<b>" not in view.primary_html
    assert "&lt;b&gt;" in view.primary_html
    assert clinical_view("Paracetamol 1 g", "").unscorable == "the candidate's answer is empty"


def test_json_rows_by_field_path_only_when_both_are_json() -> None:
    rows = json_rows(
        '{"dose_mg": 500, "drug": "amoxicillin"}', '```json\n{"dose_mg": 250, "drug": "amoxicillin"}\n```'
    )
    assert rows is not None
    assert [(r.kind, r.where, r.primary, r.candidate) for r in rows] == [
        ("json_value_change", "$.dose_mg", "500", "250")
    ]
    assert json_rows("plain text", '{"a": 1}') is None


def test_request_bodies_are_shown_as_json_or_not_at_all() -> None:
    assert request_text(b'{"model":"m","messages":[]}') == ("json", '{\n  "model": "m",\n  "messages": []\n}')
    language, text = request_text(b"\xff\xfe\x00RIFF audio")
    assert language == "text"
    assert "binary body" in text
