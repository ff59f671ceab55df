"""Transcripts compared: WER and CER after one pinned normalization, and the word alignment for display."""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

import jiwer
from rapidfuzz.distance import Levenshtein

from comparators.scoring import Comparison, Result

# Bump when normalize() changes: WER before and after a change are not comparable.
NORMALIZATION_VERSION = 1

# Hesitations that carry no content, English and Malay. "ha", "eh" and "lah" are left alone:
# in Malay speech they are particles that can change what a sentence means.
FILLERS = frozenset(
    {"um", "umm", "uh", "uhh", "uhm", "erm", "er", "err", "hmm", "hm", "mm", "mmm", "mhm", "ah", "ahh"}
    | {"emm", "aa", "aah"}
)

_DIGIT_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
# Everything but letters, digits, apostrophes and full stops becomes a space (hyphens too: "follow-up"
# and "follow up", "mana-mana" and "mana mana" are the same spoken words).
_NOT_KEPT = re.compile(r"[^\w'.]|_")
_LOOSE_POINT = re.compile(r"(?<!\d)\.|\.(?!\d)")
_LOOSE_APOSTROPHE = re.compile(r"(?<![^\W_])'|'(?![^\W_])")
_DIGIT_LETTER = re.compile(r"(?<=\d)(?=[^\W\d_])|(?<=[^\W\d_])(?=\d)")

# Number words. English and Malay share one parser: units combine with a following multiplier
# (Malay "dua puluh" is twenty, "dua belas" twelve, "dua ratus" two hundred).
_UNITS = {
    **dict.fromkeys(("one", "satu"), 1),
    **dict.fromkeys(("two", "dua"), 2),
    **dict.fromkeys(("three", "tiga"), 3),
    **dict.fromkeys(("four", "empat"), 4),
    **dict.fromkeys(("five", "lima"), 5),
    **dict.fromkeys(("six", "enam"), 6),
    **dict.fromkeys(("seven", "tujuh"), 7),
    **dict.fromkeys(("eight", "lapan"), 8),
    **dict.fromkeys(("nine", "sembilan"), 9),
}
_ZERO = frozenset({"zero", "kosong", "sifar"})
_TEENS = {
    "ten": 10, "sepuluh": 10, "eleven": 11, "sebelas": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80}
_TENS["ninety"] = 90
_HUNDRED = frozenset({"hundred", "ratus"})
_SCALES = {"thousand": 1_000, "ribu": 1_000, "million": 1_000_000, "juta": 1_000_000}
_SCALES |= {"billion": 1_000_000_000, "bilion": 1_000_000_000}
# Words that are a multiplier with its "one" built in.
_LITERAL_HUNDRED = frozenset({"seratus"})
_LITERAL_SCALES = {"seribu": 1_000, "sejuta": 1_000_000}
_POINT = frozenset({"point", "perpuluhan", "titik"})
_DIGIT_WORDS = {**_UNITS, **dict.fromkeys(_ZERO, 0)}
_NUMBER_STARTS = frozenset(_DIGIT_WORDS) | frozenset(_TEENS) | frozenset(_TENS) | _LITERAL_HUNDRED
_NUMBER_STARTS |= frozenset(_LITERAL_SCALES) | _HUNDRED | frozenset(_SCALES)

Op = Literal["equal", "substitute", "delete", "insert"]
_OPS: dict[str, Op] = {"equal": "equal", "substitute": "substitute", "delete": "delete", "insert": "insert"}


def normalize(text: str) -> str:
    """The pinned normalization both transcripts go through before WER and CER (version 1).

    1. Unicode NFKC, casefold; curly apostrophes become straight ones.
    2. Thousands separators go ("1,000" is "1000"); letters and digits that touch are split ("500mg" is
       "500 mg", "covid19" is "covid 19"): how a recogniser formats a number is not what it heard.
    3. Punctuation and symbols become spaces, hyphens included; a full stop stays only between digits
       ("2.5") and an apostrophe only inside a word ("don't" stays one word, "patients'" loses it).
    4. Fillers (FILLERS) are dropped.
    5. English and Malay number words become digits: "five hundred" is "500", "twenty one" is "21",
       "two point five" is "2.5", "dua puluh lima" is "25", "seratus" is "100". Ordinals are left alone.
    6. Words are joined by single spaces.
    """
    text = unicodedata.normalize("NFKC", text).casefold().replace("\u2019", "'").replace("\u2018", "'")
    text = _DIGIT_COMMA.sub("", text)
    text = _NOT_KEPT.sub(" ", text)
    text = _LOOSE_POINT.sub(" ", text)
    text = _LOOSE_APOSTROPHE.sub(" ", text)
    text = _DIGIT_LETTER.sub(" ", text)
    words = [w for w in text.split() if w not in FILLERS]
    return " ".join(numbers_to_digits(words))


def numbers_to_digits(words: list[str]) -> list[str]:
    """Each run of number words replaced by its digits; every other word kept as it is."""
    out: list[str] = []
    i = 0
    while i < len(words):
        parsed = _parse_number(words, i)
        if parsed is None:
            out.append(words[i])
            i += 1
        else:
            digits, i = parsed
            out.append(digits)
    return out


def _parse_number(words: list[str], start: int) -> tuple[str, int] | None:
    """The number spelled out from `start`, and the index after it; None when no number starts there."""
    first = words[start]
    following = words[start + 1] if start + 1 < len(words) else ""
    multiplier_next = following in _HUNDRED or following in _SCALES
    if first in _ZERO:
        return _decimals(words, start + 1, "0") or ("0", start + 1)
    if first == "a" or (first.isdigit() and len(first) < 4):
        if not multiplier_next:
            return None
        # "a hundred", "a thousand"; and "5 hundred", where a recogniser wrote half of it in digits
        group, stage = (1 if first == "a" else int(first)), 3
        i = start + 1
    elif first in _NUMBER_STARTS:
        group, stage = 0, 0
        i = start
    else:
        return None
    # stage: what the group below a thousand has so far: 0 nothing, 1 hundreds, 2 tens, 3 units or teens
    total, last_scale, end = 0, 10**18, i
    while i < len(words):
        word = words[i]
        following = words[i + 1] if i + 1 < len(words) else ""
        width = 1
        if word in _UNITS and following in ("belas", "puluh"):
            width = 2
            value = _UNITS[word] + 10 if following == "belas" else _UNITS[word] * 10
            kind = "teen" if following == "belas" else "tens"
        elif word in _UNITS:
            value, kind = _UNITS[word], "unit"
        elif word in _TEENS:
            value, kind = _TEENS[word], "teen"
        elif word in _TENS:
            value, kind = _TENS[word], "tens"
        else:
            value, kind = 0, ""
        if kind == "unit" and stage < 3:
            group, stage = group + value, 3
        elif kind in ("teen", "tens") and stage < 2:
            group, stage = group + value, 3 if kind == "teen" else 2
        elif word in _HUNDRED and (0 < group < 100 or i == start):
            group, stage = max(group, 1) * 100, 1  # "hundred" alone is a hundred
        elif word in _LITERAL_HUNDRED and group == 0:
            group, stage = 100, 1
        elif word in _SCALES and _SCALES[word] < last_scale and (group > 0 or i == start):
            total += max(group, 1) * _SCALES[word]
            group, stage, last_scale = 0, 0, _SCALES[word]
        elif word in _LITERAL_SCALES and group == 0 and _LITERAL_SCALES[word] < last_scale:
            total += _LITERAL_SCALES[word]
            group, stage, last_scale = 0, 0, _LITERAL_SCALES[word]
        elif word == "and" and (stage == 1 or (stage == 0 and total > 0)) and _starts_small(following):
            i += 1  # "one hundred and five"; the "and" belongs to the number only if a number follows
            continue
        elif word in _POINT and end > start:
            return _decimals(words, i, str(total + group)) or (str(total + group), end)
        else:
            break
        i += width
        end = i
    if end == start:
        return None
    return str(total + group), end


def _starts_small(word: str) -> bool:
    return word in _UNITS or word in _TEENS or word in _TENS


def _decimals(words: list[str], point: int, whole: str) -> tuple[str, int] | None:
    """`whole` and the digits spoken after the "point" at `point` (one word a digit), or None."""
    if point >= len(words) or words[point] not in _POINT:
        return None
    digits = []
    i = point + 1
    while i < len(words) and words[i] in _DIGIT_WORDS:
        digits.append(str(_DIGIT_WORDS[words[i]]))
        i += 1
    if not digits:
        return None
    return f"{whole}.{''.join(digits)}", i


# Error rates. jiwer is the reference implementation; rapidfuzz computes the same edit distance on
# word-id sequences several times faster, and a unit test holds the two to identical numbers.


def error_rates(reference: str, hypothesis: str) -> tuple[float, float]:
    """(WER, CER) of two already normalized transcripts, by edit distance over the reference's length.

    Empty transcripts are defined, not divided by: both empty is (0, 0), one empty is (1, 1) — every
    word of the one is missing from the other, the most a disagreement can be without extra words."""
    ref_words, hyp_words = reference.split(), hypothesis.split()
    if not ref_words or not hyp_words:
        return _empty_rates(ref_words, hyp_words)
    ids: dict[str, int] = {}
    ref_ids = [ids.setdefault(w, len(ids)) for w in ref_words]
    hyp_ids = [ids.setdefault(w, len(ids)) for w in hyp_words]
    wer = Levenshtein.distance(ref_ids, hyp_ids) / len(ref_ids)
    ref_chars, hyp_chars = " ".join(ref_words), " ".join(hyp_words)
    cer = Levenshtein.distance(ref_chars, hyp_chars) / len(ref_chars)
    return wer, cer


def error_rates_jiwer(reference: str, hypothesis: str) -> tuple[float, float]:
    """The same as error_rates, by jiwer: the reference the fast path is tested against."""
    ref_words, hyp_words = reference.split(), hypothesis.split()
    if not ref_words or not hyp_words:
        return _empty_rates(ref_words, hyp_words)
    ref, hyp = " ".join(ref_words), " ".join(hyp_words)
    return float(jiwer.wer(ref, hyp)), float(jiwer.cer(ref, hyp))


def _empty_rates(ref_words: list[str], hyp_words: list[str]) -> tuple[float, float]:
    return (0.0, 0.0) if not ref_words and not hyp_words else (1.0, 1.0)


def align_words(reference: str, hypothesis: str) -> list[tuple[Op, list[str], list[str]]]:
    """The word alignment of the two normalized transcripts, for display: (op, reference words,
    hypothesis words) in order, from jiwer's alignment."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    ref_words, hyp_words = ref.split(), hyp.split()
    if not ref_words or not hyp_words:
        if ref_words:
            return [("delete", ref_words, [])]
        return [("insert", [], hyp_words)] if hyp_words else []
    output = jiwer.process_words(ref, hyp)
    return [
        (
            _OPS[chunk.type],
            ref_words[chunk.ref_start_idx : chunk.ref_end_idx],
            hyp_words[chunk.hyp_start_idx : chunk.hyp_end_idx],
        )
        for chunk in output.alignments[0]
    ]


def score_speech(c: Comparison) -> Result:
    """WER and CER of the other side's transcript against the primary's (the primary is the reference,
    so WER here is how often the two systems disagree, not either one's accuracy)."""
    if c.primary.text is None or c.other.text is None:
        return Result()
    reference, hypothesis = normalize(c.primary.text), normalize(c.other.text)
    wer, cer = error_rates(reference, hypothesis)
    words_primary = len(reference.split())
    empty = (words_primary == 0) + (not hypothesis)
    return Result(
        metrics={
            "wer": wer,
            "cer": cer,
            "words_primary": float(words_primary),
            "empty_transcripts": float(empty),
        }
    )
