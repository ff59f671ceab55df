"""Pure functions that make a candidate's text drift from the primary's: synonyms, lost words,
changed numbers and flipped negations."""

from __future__ import annotations

import re
from collections.abc import Callable
from random import Random

from simulator.vocab import SYNONYMS

_TOKENS = re.compile(r"(\s+)")
_WORD_PARTS = re.compile(r"^(\W*)(\w[\w-]*)(\W*)$")
# Whole numbers only: the 2 of "SpO2" is part of a name, not a measurement.
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w]|\.\d)")

# (pattern, replacement): each one turns a negated statement into an affirmed one or back.
_NEGATION_FLIPS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), replacement)
    for pattern, replacement in (
        (r"\bdenies\b", "reports"),
        (r"\bdenied\b", "reported"),
        (r"\bno history of\b", "history of"),
        (r"\bno (?=\w)", ""),
        (r"\bnot (?=\w)", ""),
        (r"\bwithout\b", "with"),
        (r"\bnegative for\b", "positive for"),
        (r"\bdon't have\b", "have"),
        (r"\bnone of that\b", "some of that"),
        (r"\btiada\b", "ada"),
        (r"\btak ada\b", "ada"),
        (r"\btidak (?=\w)", ""),
        (r"\bmenafikan\b", "mengadu"),
        (r"\bbukan (?=\w)", ""),
        # and the other way: an affirmed finding becomes a denied one
        (r"\breports\b", "denies"),
        (r"\bcomplains of\b", "denies"),
        (r"\bpositive for\b", "negative for"),
        (r"\bmengadu\b", "menafikan"),
        # the look-behinds keep a flip from undoing the "tidak " or "tak " just flipped
        (r"(?<!tidak )\bmengalami\b", "tidak mengalami"),
        (r"(?<!tak )\bada\b", "tiada"),
        (r"\bI have had\b", "I have not had"),
    )
)


def apply_drift(
    text: str,
    rng: Random,
    *,
    substitution: float = 0.0,
    drop_words: float = 0.0,
    numbers: float = 0.0,
    negation: float = 0.0,
) -> str:
    """All four drifts in turn; each draws from its own generator so one rate never moves
    the random choices of another."""
    seeds = [rng.getrandbits(64) for _ in range(4)]
    text = change_numbers(text, Random(seeds[0]), numbers)
    text = flip_negations(text, Random(seeds[1]), negation)
    text = substitute_words(text, Random(seeds[2]), substitution)
    return lose_words(text, Random(seeds[3]), drop_words)


def _map_words(text: str, change: Callable[[str], str | None]) -> str:
    """Rebuild `text` with each word passed through `change` (None drops the word)."""
    tokens = _TOKENS.split(text)
    out: list[str] = []
    # The separators either side of a dropped word merge into one; a line break wins, so
    # a lost word never joins two lines of a note.
    pending: str | None = None
    for index, token in enumerate(tokens):
        if index % 2:  # whitespace separators sit at odd positions
            if pending is not None:
                keep_later = "\n" in token or "\n" not in pending
                token = token if keep_later else pending
                pending = None
                if not out:  # the text's first word was dropped: no separator before the rest
                    continue
            out.append(token)
        elif token:
            new = change(token)
            if new is not None:
                out.append(new)
            elif pending is None:
                pending = out.pop() if out else ""
    return "".join(out)


def substitute_words(text: str, rng: Random, rate: float) -> str:
    """Swap known words for a synonym, keeping the case of the first letter and punctuation."""
    if rate <= 0:
        return text

    def change(token: str) -> str:
        match = _WORD_PARTS.match(token)
        if not match:
            return token
        before, word, after = match.groups()
        choices = SYNONYMS.get(word.lower())
        if not choices or rng.random() >= rate:
            return token
        new = rng.choice(choices)
        if word[0].isupper():
            new = new[0].upper() + new[1:]
        return before + new + after

    return _map_words(text, change)


def lose_words(text: str, rng: Random, rate: float) -> str:
    """Lose words, the way a speech model misses them in a noisy recording."""
    if rate <= 0:
        return text
    return _map_words(text, lambda token: None if rng.random() < rate else token)


def mutate_number(number: str, rng: Random) -> str:
    """A plausible slip on a number: 500 → 50, 37.8 → 38.7, 82 → 83; never the same number."""
    for _ in range(10):
        kind = rng.choice(("swap", "scale", "nudge"))
        digits = number.replace(".", "")
        point = number.find(".")
        if kind == "swap" and len(digits) > 1:
            i = rng.randrange(len(digits) - 1)
            digits = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
            new = digits if point < 0 else digits[:point] + "." + digits[point:]
        elif kind == "scale":
            if point >= 0:
                shift = rng.choice((-1, 1))
                position = min(max(point + shift, 1), len(digits) - 1)
                new = digits[:position] + "." + digits[position:]
            elif number.endswith("0") and len(number) > 1 and rng.random() < 0.7:
                new = number[:-1]
            else:
                new = number + "0"
        else:
            i = rng.randrange(len(digits))
            step = rng.choice((-1, 1))
            digit = (int(digits[i]) + step) % 10
            digits = digits[:i] + str(digit) + digits[i + 1 :]
            new = digits if point < 0 else digits[:point] + "." + digits[point:]
        if _canonical_number(new) is not None and new != number and not _leading_zero(new):
            return new
    return number + "0"


def _leading_zero(number: str) -> bool:
    return len(number) > 1 and number[0] == "0" and number[1] != "."


def _canonical_number(number: str) -> float | None:
    try:
        return float(number)
    except ValueError:
        return None


def change_numbers(text: str, rng: Random, rate: float) -> str:
    """Change doses, vitals and durations; a changed dose is the drift that harms a patient."""
    if rate <= 0:
        return text
    return _NUMBER.sub(lambda m: mutate_number(m[0], rng) if rng.random() < rate else m[0], text)


def flip_negations(text: str, rng: Random, rate: float) -> str:
    """Turn "no fever" into "fever", "tiada demam" into "ada demam", "reports" into "denies"."""
    if rate <= 0:
        return text
    matches: list[tuple[int, int, str]] = []
    for pattern, replacement in _NEGATION_FLIPS:
        matches.extend((m.start(), m.end(), replacement) for m in pattern.finditer(text))
    matches.sort(key=lambda item: (item[0], -item[1]))
    out: list[str] = []
    position = 0
    claimed = 0  # end of the last span considered, flipped or not: spans never nest
    capitalise_next = False
    for start, end, replacement in matches:
        if start < claimed:
            continue
        claimed = end
        if rng.random() >= rate:
            continue
        original = text[start:end]
        between = text[position:start]
        out.append(_capitalise_first(between) if capitalise_next else between)
        capitalise_next = False
        if original[:1].isupper():
            if replacement:
                replacement = replacement[0].upper() + replacement[1:]
            else:
                capitalise_next = True
        out.append(replacement)
        position = end
    tail = text[position:]
    out.append(_capitalise_first(tail) if capitalise_next else tail)
    return "".join(out)


def _capitalise_first(text: str) -> str:
    return text[:1].upper() + text[1:]
