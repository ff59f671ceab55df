"""Clinical text read one way: NFKC, lower case, numbers written in words (English and Malay) as digits,
with a map back to the original characters so every fact keeps its span in the text a person reads."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from fractions import Fraction

from comparators.anchors import Words, matches_at, spliced, words_of
from comparators.lexicon import alternation

# Words that are a number on their own (English, Malay).
_UNITS: dict[str, int] = {  # not "nil": in clinic notes it means none, not zero
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9,
    "kosong": 0, "sifar": 0, "satu": 1, "dua": 2, "tiga": 3, "empat": 4, "lima": 5, "enam": 6,
    "tujuh": 7, "lapan": 8, "sembilan": 9,
}  # fmt: skip
_TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "sepuluh": 10, "sebelas": 11,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
# Malay builds 11-19, tens and hundreds from a unit and a word after it: "dua belas", "dua puluh".
_AFTER_UNIT = {"belas": None, "puluh": 10, "ratus": 100}
_SCALES = {"hundred": 100, "thousand": 1000, "ribu": 1000, "million": 1_000_000, "juta": 1_000_000}
_WHOLE = {"seratus": 100, "seribu": 1000, "sejuta": 1_000_000}
_FRACTIONS = {"setengah": Fraction(1, 2), "separuh": Fraction(1, 2), "suku": Fraction(1, 4)}
_POINT = frozenset(("point", "perpuluhan"))
_ALL = {*_UNITS, *_TEENS, *_TENS, *_AFTER_UNIT, *_SCALES, *_WHOLE, *_FRACTIONS, *_POINT}
# A run of number words; "and" only after a scale ("one hundred and five") or before a half, hyphens
# join ("twenty-five"), "point" only before a digit word ("thirty seven point eight").
_NUMWORD = alternation(_ALL - _POINT)
_DIGITWORD = alternation(_UNITS)
_POINT_RE = rf"(?:point|perpuluhan)(?:\s+(?:{_DIGITWORD}))+"
_AND = r"(?:(?<=hundred)|(?<=thousand)|(?<=ratus)|(?<=ribu))\s+(?:and|dan)\s+"
_RUN = re.compile(
    rf"(?<![\w'’-])(?:(?:a\s+)?(?:{_NUMWORD})|{_POINT_RE})"  # not inside a word: "kedua-dua", "se-"
    rf"(?:(?:\s+|-)(?:{_NUMWORD}|{_POINT_RE})|{_AND}(?:{_NUMWORD})|\s+(?:and|dan)\s+(?:a\s+)?half)*\b"
    r"|\b(?:half|a\s+quarter)\b",
)
# What a run opens with (comparators/anchors.py): one of these words, or the "a" of "a hundred",
# "a quarter" (looked for before each of them).
_RUN_WORDS = frozenset({*(_ALL - _POINT), *_POINT, "half"})


def run_starts(text: str, words: Words) -> list[int]:
    """Every place a run of number words (`_RUN`) may start, from the text's `words` (comparators/
    anchors.py's `words_of`): a number word, whole (a run starts after no word character and its first
    word ends at a space, a hyphen or another character that is no letter), and the "a" that stands,
    then spaces, before one ("a hundred", "a quarter")."""
    texts, starts = words
    found: list[int] = []
    for k in [k for k, word in enumerate(texts) if word in _RUN_WORDS or word == "quarter"]:
        start = starts[k]
        if k > 0 and texts[k - 1] == "a" and text[starts[k - 1] + 1 : start].isspace():
            found.append(starts[k - 1])
        if texts[k] != "quarter":
            found.append(start)
    return found


_TOKENS = re.compile(r"[a-z]+|\d+")


@dataclass(frozen=True, slots=True)
class Text:
    """The normalized text and, per character of it, the offset of the original character it came from
    (one more entry at the end: the original's length), so a match in `norm` is a span in `original`."""

    original: str
    norm: str
    offsets: list[int] | None  # None: the identity (nothing changed length)

    def span(self, start: int, end: int) -> tuple[int, int]:
        if self.offsets is None:
            return start, end
        return self.offsets[start], self.offsets[end] if end > start else self.offsets[start]


def _show(x: Fraction | int) -> str:
    if x.denominator == 1:
        return str(x.numerator)
    decimal = f"{float(x):.6f}".rstrip("0").rstrip(".")
    return decimal if Fraction(decimal) == x else str(x)


def words_to_numbers(words: list[str]) -> list[str]:
    """The numbers a run of number words says, as digit strings: ["thirty", "seven", "point", "eight"]
    is ["37.8"], ["one", "forty"] is ["140"] (the way blood pressures are read out), ["lima", "belas"]
    is ["15"], ["five", "five"] is ["5", "5"]. Words that cannot continue a number start a new one."""
    out: list[str] = []
    # Whole numbers stay ints (exact, and faster); a half or a quarter makes them fractions.
    total: Fraction | int = 0
    current: Fraction | int = 0
    last: str | None = None  # kind of the last word: unit, teen, tens, scale, fraction, point
    unit = 0  # the last unit word's value (Malay "dua puluh": the unit the next word multiplies)
    decimals: list[str] | None = None
    started = False

    def flush() -> None:
        nonlocal total, current, last, unit, decimals, started
        if started:
            value = total + current
            text = _show(value)
            if decimals:
                text = f"{text}.{''.join(decimals)}" if value.denominator == 1 else text
            out.append(text)
        total = current = 0
        last, unit, decimals, started = None, 0, None, False

    for raw in words:
        w = raw.lower()
        if w in ("and", "dan", "a"):
            continue
        if decimals is not None:
            if w in _UNITS or w.isdigit():
                decimals.append(str(_UNITS[w]) if w in _UNITS else w)
                continue
            flush()
        if w.isdigit():
            flush()
            out.append(w)
            continue
        if w in _POINT:
            if not started:
                started = True  # "point five" is 0.5
            decimals = []
            continue
        if w in _UNITS:
            if last in ("unit", "teen") or (last == "tens" and current % 10):
                flush()
            current += _UNITS[w]
            unit, last, started = _UNITS[w], "unit", True
        elif w in _TEENS:
            if last == "unit" and current < 10 and total == 0:  # "one fifteen" read out: 115
                current = current * 100 + _TEENS[w]
            elif last in ("unit", "teen", "tens"):
                flush()
                current = _TEENS[w]
            else:
                current += _TEENS[w]
            last, started = "teen", True
        elif w in _TENS:
            if last == "unit" and current < 10 and total == 0:  # "one forty" read out: 140
                current = current * 100 + _TENS[w]
            elif last in ("unit", "teen", "tens") and not (last == "unit" and current >= 100):
                flush()
                current = _TENS[w]
            else:
                current += _TENS[w]
            last, started = "tens", True
        elif w == "belas" and last == "unit":
            current += 10
            last = "teen"
        elif w in ("puluh", "ratus") and last == "unit":
            factor = _AFTER_UNIT[w]
            assert factor is not None
            current += unit * (factor - 1)
            last = "tens" if w == "puluh" else "scale"
        elif w in _WHOLE:
            if started and last != "scale":
                flush()
            current += _WHOLE[w]
            last, started = "scale", True
        elif w in _SCALES:
            scale = _SCALES[w]
            if scale >= 1000:
                total += (current or 1) * scale
                current = 0
            else:
                current = (current or 1) * scale
            last, started = "scale", True
        elif w in _FRACTIONS or w in ("half", "quarter"):
            value = _FRACTIONS.get(w) or (Fraction(1, 2) if w == "half" else Fraction(1, 4))
            current += value
            last, started = "fraction", True
        else:
            flush()
    flush()
    return out


def _lower(piece: str) -> str:
    """Lower case and NFKC without changing the length (what would change it is kept as it was)."""
    if piece.isascii():
        return piece.lower()
    folded = unicodedata.normalize("NFKC", piece).lower()
    if len(folded) == len(piece):
        return folded
    out = []
    for ch in piece:
        folded = unicodedata.normalize("NFKC", ch).lower()
        out.append(folded if len(folded) == 1 else ch.lower() if len(ch.lower()) == 1 else ch)
    return "".join(out)


_EXPANDS = re.compile(r"[^\x00-\x7f]")


def read(original: str) -> Text:
    """The text as the fact extractor reads it (see the module docstring)."""
    return read_words(original)[0]


def read_words(original: str) -> tuple[Text, Words]:
    """`read`, and the words of the normalized text (comparators/anchors.py's `words_of`), found once."""
    pieces: list[tuple[str, int, int]] = []  # (normalized piece, original start, original end)
    # Characters NFKC expands ("½" → "1/2", "℃" → "°c") are expanded here, keeping their span.
    position = 0
    if not original.isascii():
        for m in _EXPANDS.finditer(original):
            folded = unicodedata.normalize("NFKC", m[0]).lower().replace("⁄", "/")
            if len(folded) != 1:
                pieces.append((_lower(original[position : m.start()]), position, m.start()))
                pieces.append((folded, m.start(), m.end()))
                position = m.end()
    pieces.append((_lower(original[position:]), position, len(original)))
    expanded = any(len(p) != e - s for p, s, e in pieces)
    lowered = "".join(p for p, _, _ in pieces)
    base_offsets = _offsets(pieces) if expanded else None
    # Number words become digits.
    replaced: list[tuple[str, int, int]] = []  # in `lowered` coordinates
    position = 0
    words = words_of(lowered)
    edits: list[tuple[int, int, str]] = []
    for m in matches_at(_RUN, lowered, run_starts(lowered, words)):
        tokens = _TOKENS.findall(m[0])
        if all(t.isdigit() or t in ("and", "dan", "a") for t in tokens):
            continue
        numbers = words_to_numbers(tokens)
        if not numbers:
            continue
        replaced.append((lowered[position : m.start()], position, m.start()))
        replaced.append((" ".join(numbers), m.start(), m.end()))
        edits.append((m.start(), m.end(), replaced[-1][0]))
        position = m.end()
    if not replaced:
        return Text(original, lowered, base_offsets), words
    replaced.append((lowered[position:], position, len(lowered)))
    offsets = _offsets(replaced)
    if base_offsets is not None:
        offsets = [base_offsets[i] for i in offsets]
    return Text(original, "".join(p for p, _, _ in replaced), offsets), spliced(words, edits)


def _offsets(pieces: list[tuple[str, int, int]]) -> list[int]:
    offsets: list[int] = []
    for piece, start, end in pieces:
        if len(piece) == end - start:
            offsets.extend(range(start, end))
        else:
            offsets.extend([start] * len(piece))
    offsets.append(pieces[-1][2] if pieces else 0)
    return offsets
