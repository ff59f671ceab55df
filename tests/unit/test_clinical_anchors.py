"""The clinical patterns, tried only where their anchors say they can start (comparators/anchors.py), find
exactly what the patterns find searched everywhere: on the labeled corpus, on simulated notes, and on
texts written to catch an anchor out (words glued to numbers, cues inside words, odd spacing)."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from pathlib import Path
from random import Random

import pytest

from comparators import facts, numbers
from comparators.anchors import Anchored, Anchors, matches_at, words_of
from simulator import text as simulator_text

CORPUS = Path(__file__).resolve().parent.parent / "data" / "clinical"

ANCHORED = {name: value for name, value in vars(facts).items() if isinstance(value, Anchored)}

TRICKY = [
    "x5/7 x 5/7 for5 days for 5 days forseminggu xday 5 untuk2 minggu selama 3 hari dalam tempoh 2 minggu",
    "max500mg max. 500 mg maximum4g maksimum 4 g/hari had 8 biji not to exceed 4g nomore than 2 tabs",
    "maxof 2 g maxdose 4g maxdaily dose 4 g had8 biji maksimum500mg max.of 1 g tabular capable t.ds",
    "q4h q 4 h every4hours setiap 8 jam tiap6jam 3x/day 2 x sehari 4-6 hourly 1x sehari bd/tds q8h",
    "tablets tabs. tab.panadol t.maxolon cap.amoxil caps syr.ventolin sirap mixture susp.zinc kapsulx",
    "allergies:none allergy:nil alahan:tiada alergitiada diketahui nkda nka; no known drug allergies",
    "f/u 2/52 followup 3/12 follow-up in 1 month re-check in 2 weeks r/v 1/52 tca 3 bulan rv2/7",
    "sebiji sekapsul setitik sesudu 2 biji 1/2 tab 1 1/2 tabs 500mg/5ml 10 mg/kg/day 5mg/ml",
    "one hundred and twenty five mg, a half tab, a quarter, point five, dua puluh lima, setengah biji",
    "co-amoxiclav 625 mg amoxicillin\t500mg para-cetamol  1 g xyz-abc 10 ml a-b-c-d 5 units",
    "a  five, a\nhundred, a-one, someone ten often, 'one', kedua-dua, sepuluh_dua, half-dozen, a quarter",
    "Don’t give ² doses; café ½ tab, naïve İ µg ǅ 𝟓 mg, e\u0301 x, ×2, 5×2, °c 37°C — a–b",
    "BP 120/80, 118/76 temp 37.8c 38 degrees 39.5 °c age 45 years old 45yo 45 y/o 12 tahun",
    "___500 mg _500mg 500_mg ５００ｍｇ 500µg 500 µg ½ tab ⅓ dose 37,5 c 1,000 mg 1,000,000 units",
    "pr 88 p.r. 10 mg PO/IV IV/PO s/c sc s.c. i.m. im. neb. inh. prn. stat. o.d. od. b.d.",
    "stopped aspirin, withheld, not given, tidak diberi, dihentikan, hentikan ubat, jangan ambil",
    "makan ubat selepas makan sebelum makan makanan, ditelan, sapukan, by mouth, per rectum",
]


def _texts() -> list[str]:
    out = list(TRICKY)
    for path in sorted(CORPUS.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                pair = json.loads(line)
                out += [pair["primary"], pair["other"]]
    for seed in range(60):
        rng = Random(seed)
        lang = "en" if seed % 2 else "ms"
        out.append(simulator_text.soap_note(rng, lang))
        out.append(simulator_text.chat_answer(rng, lang))
    rng = Random(7)
    for text in TRICKY:  # the same words with other spaces and glue between them
        pieces = text.split(" ")
        out.append("".join(p + rng.choice(["", " ", "  ", "\n", "-", ".", "/"]) for p in pieces))
    return out


TEXTS = _texts()


def _spans(matches: object) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m[0]) for m in matches]  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(ANCHORED))
def test_anchored_patterns_find_what_the_patterns_find(name: str) -> None:
    anchored = ANCHORED[name]
    for original in TEXTS:
        text = numbers.read(original).norm
        at = Anchors(text)
        assert _spans(anchored.matches(at)) == _spans(anchored.pattern.finditer(text)), text
        # Windows as the medication reader scans them: starting anywhere, ending after a space.
        rng = Random(len(text))
        windows = []
        for _ in range(5):
            start = rng.randrange(len(text) + 1)
            end = rng.randrange(start, len(text) + 1)
            windows.append((start, end))
            assert _spans(anchored.matches(at, start, end)) == _spans(
                anchored.pattern.finditer(text, start, end)
            ), (text, start, end)
        expected = [m for start, end in windows for m in anchored.pattern.finditer(text, start, end)]
        assert _spans(anchored.matches_in(at, windows)) == _spans(expected), (text, windows)


def test_a_window_ending_inside_a_word_is_searched_whole() -> None:
    rx = Anchored(re.compile(r"\bstop\b"), words=("stop",))
    at = Anchors("please stopping now")
    assert _spans(rx.matches(at, 0, 11)) == _spans(rx.pattern.finditer(at.text, 0, 11)) == [(7, 11, "stop")]


def test_number_word_runs_are_tried_where_they_start() -> None:
    for original in TEXTS:
        text = original.lower()
        assert _spans(matches_at(numbers._RUN, text, numbers.run_starts(text, words_of(text)))) == _spans(
            numbers._RUN.finditer(text)
        ), text


def test_facts_made_the_quick_way_are_facts() -> None:
    quick = facts._fact("medication", "paracetamol", "dose", "1000", "mg", 3, 9)
    slow = facts.Fact("medication", "paracetamol", "dose", "1000", "mg", 3, 9)
    assert (quick, hash(quick), repr(quick)) == (slow, hash(slow), repr(slow))
    with pytest.raises(AttributeError):
        quick.value = "500"  # type: ignore[misc]


def test_the_words_of_a_text_with_its_number_words_replaced_are_its_words() -> None:
    for original in [*TEXTS, "", "x", " x ", "_a_ b", "--"]:
        text, words = numbers.read_words(original)
        runs = list(re.finditer(r"\w+", text.norm))
        assert words == words_of(text.norm) == ([m[0] for m in runs], [m.start() for m in runs]), original


def _show_slowly(x: Fraction) -> str:
    """facts.show as first written: through a float, checked against the fraction."""
    if x.denominator == 1:
        return str(x.numerator)
    decimal = f"{float(x):.6f}".rstrip("0").rstrip(".")
    return decimal if Fraction(decimal) == x else str(x)


def test_numbers_are_read_and_shown_as_fractions_would_be() -> None:
    rng = Random(3)
    for _ in range(20_000):
        denominator = rng.choice([2, 3, 4, 7, 8, 24, 25, 30, 64, 125, 1000, 3044, 10**6, 10**7, 2**20])
        numerator = rng.randrange(0, rng.choice([100, 10**6, 10**12, 10**16]))
        x = Fraction(numerator, denominator)
        assert facts.show(x) == _show_slowly(x), x
    for text in ["0", "007", "37.8", "1,000", "1,000.50", "0.5", "٣٧", "٣٧.٨", "1.", "5.000", "1e3"]:
        assert facts.number(text) == Fraction(text.replace(",", "")), text
