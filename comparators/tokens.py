"""The one Unicode word tokenizer the text and clinical scorers share (ROUGE-L, lengths, negation scopes)."""

from __future__ import annotations

import re
import unicodedata
from typing import Literal, NamedTuple, cast

TokenKind = Literal["number", "word", "punct"]

# Letters of any script, then letters or digits: "demam", "café", "SpO2", "q8h" stay whole. Inner
# hyphens and apostrophes join ("paru-paru" is a Malay plural, "don't" a single negation cue). The
# combining-accent range keeps a decomposed accent that NFKC could not compose inside its word.
_ALNUM = r"(?:[^\W_]|[\u0300-\u036f])"
_WORD = rf"[^\W\d_]{_ALNUM}*(?:['’\-]{_ALNUM}+)*"
# Digit groups ("1,000"), decimals ("37.8") and slash pairs ("130/85", "1/2", "12/05/2024") are one
# token: a blood pressure split in two would let "130/85" and "85/130" look alike. A trailing full stop
# stays punctuation ("37.8." is 37.8 then "."). "SpO2" is not a number because words match first.
_NUMBER = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+(?:\.\d+)?)*"
_TOKEN = re.compile(rf"(?P<word>{_WORD})|(?P<number>{_NUMBER})|(?P<punct>\S)")
# The same for a text without "_", where "a word character or a combining accent" is one character
# class, which the regex engine repeats far faster than a choice of two.
_ALNUM_NO_UNDERSCORE = r"[\w\u0300-\u036f]"
_TOKEN_NO_UNDERSCORE = re.compile(
    rf"(?P<word>[^\W\d_]{_ALNUM_NO_UNDERSCORE}*(?:['’\-]{_ALNUM_NO_UNDERSCORE}+)*)|(?P<number>{_NUMBER})"
    r"|(?P<punct>\S)"
)


def _tokens(text: str) -> re.Pattern[str]:
    return _TOKEN if "_" in text else _TOKEN_NO_UNDERSCORE


class Token(NamedTuple):
    text: str  # casefolded
    kind: TokenKind
    start: int  # offsets into normalize(text), not the raw text
    end: int


def normalize(text: str) -> str:
    """NFKC: "µg" and "μg", "℃" and "°C", full-width digits and "SpO₂" each read one way."""
    return unicodedata.normalize("NFKC", text)


def scan(text: str) -> list[Token]:
    """Every token of `text` in order, punctuation included (the clinical scorer needs it to end a
    negation's scope). Offsets index `normalize(text)`."""
    return [
        Token(match[0].casefold(), cast(TokenKind, match.lastgroup), match.start(), match.end())
        for match in _TOKEN.finditer(normalize(text))
    ]


def tokenize(text: str) -> list[str]:
    """Casefolded words and numbers; punctuation is split off and dropped (ROUGE and lengths count
    words)."""
    text = normalize(text)
    is_ascii = text.isascii()  # case does not change where tokens are, and ASCII folds as it lowers
    # Split on the tokens: [spaces, word, number, punctuation, spaces, ...], None for the kinds not found.
    parts = _tokens(text).split(text.lower() if is_ascii else text)
    found = [word or number for word, number in zip(parts[1::4], parts[2::4], strict=True) if word or number]
    return found if is_ascii else [token.casefold() for token in found]


class Tokenizer:
    """`tokenize` as an object, for `rouge_score.RougeScorer(tokenizer=...)` (the reference ROUGE)."""

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text)
