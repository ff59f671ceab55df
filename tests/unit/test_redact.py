"""Redaction of Malaysian IC numbers, Malaysian phone numbers and e-mail addresses: hand-checked
synthetic examples, the things that must never be touched (doses, dates, lab values), and the same
placeholder for the same value on both sides of a pair."""

from __future__ import annotations

import json

import pytest

from shadowgate.redact import Redactor, redact

# (text, what it must become) — every identifier here is synthetic.
IC_NUMBERS = [
    ("900101-14-5678", "[IC-1]"),
    ("900101145678", "[IC-1]"),
    ("900101 14 5678", "[IC-1]"),
    ("No. KP: 850612-08-1234.", "No. KP: [IC-1]."),
    ("IC no.010203-10-0001, lelaki", "IC no.[IC-1], lelaki"),
    ("(991231-71-0009)", "([IC-1])"),
]
PHONE_NUMBERS = [
    ("012-345 6789", "[PHONE-1]"),
    ("0123456789", "[PHONE-1]"),
    ("012 345 6789", "[PHONE-1]"),
    ("011-2345 6789", "[PHONE-1]"),  # 011 numbers have eight digits after the code
    ("+6012-345 6789", "[PHONE-1]"),
    ("+60 12-345 6789", "[PHONE-1]"),
    ("+60123456789", "[PHONE-1]"),
    ("60123456789", "[PHONE-1]"),
    ("+6 012-345 6789", "[PHONE-1]"),
    ("+60 (0)12-345 6789", "[PHONE-1]"),
    ("03-1234 5678", "[PHONE-1]"),  # Klang Valley landline
    ("(03) 1234 5678", "[PHONE-1]"),
    ("+603-1234 5678", "[PHONE-1]"),
    ("04-123 4567", "[PHONE-1]"),  # Penang
    ("07-2234567", "[PHONE-1]"),  # Johor
    ("082-123456", "[PHONE-1]"),  # Kuching
    ("088-123 456", "[PHONE-1]"),  # Kota Kinabalu
    ("Tel: 019-876 5432.", "Tel: [PHONE-1]."),
]
EMAILS = [
    ("ali.bakar@klinik-sejahtera.com.my", "[EMAIL-1]"),
    ("Hubungi siti_90+nota@example.my, terima kasih", "Hubungi [EMAIL-1], terima kasih"),
    ("<dr.lim@hospital.example>", "<[EMAIL-1]>"),
]
# Clinical text that must come out exactly as it went in.
UNTOUCHED = [
    "Paracetamol 500 mg tds for 3 days",
    "Amoxicillin 0.5 g, 250mg/5ml syrup",
    "Visit on 2024-01-15 at 09:30",
    "Lahir 15/01/2024, datang semula 15-01-2024",
    "BP 120/80 mmHg, HR 60 bpm, SpO2 98%",
    "Hb 10.2 g/dL, WBC 11.4 x10^9/L, HbA1c 7.1%",
    "Insulin 0 3 10 15 20 units over the week",
    "Glucose readings 03 10 15 20",
    "weight 60 123 kg",
    "Reference 12345678901234",
    "Invoice 2024010112345",
    "ratio 1.0123456789",
    "901301-14-5678",  # month 13: not an IC
    "900132-14-5678",  # day 32: not an IC
    "900101-00-5678",  # place code 00: not an IC
    "9001011456789",  # thirteen digits
    "025-123 4567",  # 02 is not a Malaysian area code
    "01234567",  # too short for a mobile number
    "someone at example dot com",
    "user@localhost",
]


@pytest.mark.parametrize(("text", "expected"), IC_NUMBERS)
def test_ic_numbers(text: str, expected: str) -> None:
    assert redact(text, ["ic"]) == expected


@pytest.mark.parametrize(("text", "expected"), PHONE_NUMBERS)
def test_phone_numbers(text: str, expected: str) -> None:
    assert redact(text, ["phone"]) == expected


@pytest.mark.parametrize(("text", "expected"), EMAILS)
def test_emails(text: str, expected: str) -> None:
    assert redact(text, ["email"]) == expected


@pytest.mark.parametrize("text", UNTOUCHED)
def test_doses_dates_and_lab_values_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_only_the_chosen_kinds_are_redacted() -> None:
    text = "IC 900101-14-5678, tel 012-345 6789, ali@example.my"
    assert redact(text, ["email"]) == "IC 900101-14-5678, tel 012-345 6789, [EMAIL-1]"
    assert redact(text, ["ic", "phone"]) == "IC [IC-1], tel [PHONE-1], ali@example.my"
    assert redact(text, []) == text
    assert not Redactor([])
    with pytest.raises(ValueError, match="unknown identifier kinds"):
        Redactor(["passport"])  # type: ignore[list-item]


def test_one_value_one_placeholder_on_both_sides_and_differences_stay_visible() -> None:
    r = Redactor(["ic", "phone", "email"])
    primary = r.text("Pesakit (IC 900101-14-5678) boleh dihubungi di 012-345 6789 atau Ali@Example.my.")
    candidate = r.text(
        "Patient IC 900101145678; phone +60 12-345 6789; e-mail ali@example.my; IC 880808-10-2222"
    )
    assert primary == "Pesakit (IC [IC-1]) boleh dihubungi di [PHONE-1] atau [EMAIL-1]."
    # The same IC without dashes, the same phone in international form, the same address in another
    # case: the same placeholders. Another IC is another placeholder, so the sides still differ there.
    assert candidate == "Patient IC [IC-1]; phone [PHONE-1]; e-mail [EMAIL-1]; IC [IC-2]"
    assert Redactor(["ic"]).text("880808-10-2222") == "[IC-1]"  # numbering is per redactor (per pair)


def test_bodies_json_value_by_value_text_and_multipart() -> None:
    r = Redactor(["ic", "phone", "email"])
    body = json.dumps(
        {"messages": [{"role": "user", "content": "Nota:\n900101-14-5678\n012-3456789 ali@example.my"}]}
    ).encode()
    assert b"\\n900101" in body  # in raw JSON the line break hides the IC's word boundary
    out = json.loads(r.bytes(body))
    assert out == {"messages": [{"role": "user", "content": "Nota:\n[IC-1]\n[PHONE-1] [EMAIL-1]"}]}

    multipart = (
        b'--b\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nIC 900101-14-5678\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        b"\xff\xfe\x00RIFF\x80\r\n--b--\r\n"
    )
    redacted = r.bytes(multipart)
    assert b"900101" not in redacted
    assert b"IC [IC-1]" in redacted
    assert b"\xff\xfe\x00RIFF\x80" in redacted  # the audio bytes stay as they were
    assert r.bytes(b"") == b""
    assert r.value({"phone": "0123456789", "n": 3, "list": ["ali@example.my", None]}) == {
        "phone": "[PHONE-1]",
        "n": 3,
        "list": ["[EMAIL-1]", None],
    }
