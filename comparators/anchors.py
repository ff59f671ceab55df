"""Where in a text a pattern can start, found once per text, so that each pattern is tried only there.

Python's regex engine searches a pattern that opens with a look-behind or a word boundary by trying
all of it at every character of the text; only a pattern that opens with literal characters is found
by a fast scan. Most clinical patterns open with a number or with one of a few words, so the text's
words (runs of word characters, as `\\w+` finds them) are found once (`Anchors`), and each pattern
(`Anchored`) is matched only where a number or one of its first words begins. A pattern whose start
cannot be listed as whole words (a word that may be glued to what follows, "x5/7", "tablets") names a
`finder` instead: a pattern that matches wherever the pattern does (its opening words without the
leading look-behind), searched with the fast scan.

`Anchored.matches` gives exactly the matches `re.Pattern.finditer` gives, provided every match starts
where its anchors say: the patterns are written next to their anchors in comparators/facts.py, and
tests/unit/test_clinical_anchors.py checks each pair on texts written to catch them out.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable
from itertools import accumulate

_WORD = re.compile(r"\w+")


# A text's words and where each starts, in order: two lists side by side (no tuple a word).
Words = tuple[list[str], list[int]]
_WORD_SPLIT = re.compile(r"(\w+)")


def words_of(text: str) -> Words:
    """The text's words (runs of word characters, `\\w+`) and where each starts, in order."""
    parts = _WORD_SPLIT.split(text)  # [gap, word, gap, word, ..., gap]
    words = parts[1::2]
    return words, list(accumulate(map(len, parts)))[0 : 2 * len(words) : 2]


def spliced(words: Words, edits: list[tuple[int, int, str]]) -> Words:
    """The `words_of` a text becomes when each (start, end) span of it, in order, is replaced by a
    string: the words outside the spans, moved by what the spans before them changed in length, and
    the strings' own words. Each span starts and ends with a whole word and has no word character on
    either side (so no word is cut or joined), and each string starts and ends with one."""
    texts, starts = words
    out_texts: list[str] = []
    out_starts: list[int] = []
    shift = 0
    i = 0
    for start, end, string in edits:
        j = bisect_left(starts, start, i)
        out_texts += texts[i:j]
        out_starts += [at + shift for at in starts[i:j]] if shift else starts[i:j]
        new_texts, new_starts = words_of(string)
        out_texts += new_texts
        out_starts += [at + start + shift for at in new_starts]
        i = bisect_left(starts, end, j)
        shift += len(string) - (end - start)
    out_texts += texts[i:]
    out_starts += [at + shift for at in starts[i:]] if shift else starts[i:]
    return out_texts, out_starts


# Every anchored pattern's first words: word -> the patterns that may start there.
_BY_WORD: dict[str, list[Anchored]] = {}


class Anchors:
    """Where one text's numbers start (words that open with a digit), where each anchored pattern's
    first words are written, and what each pattern's starts came to (a pattern is scanned more than
    once a text)."""

    __slots__ = ("_starts", "numbers", "text", "words")

    def __init__(self, text: str, words: Words | None = None) -> None:
        """`words`: the text's `words_of`, where already found."""
        self.text = text
        self._starts: dict[Anchored, list[int]] = {}
        texts, starts = words_of(text) if words is None else words
        self.numbers = [start for word, start in zip(texts, starts, strict=True) if word[0].isdigit()]
        self.words: dict[Anchored, list[int]] = {}  # pattern -> where its first words are, in order
        for k in [k for k, word in enumerate(texts) if word in _BY_WORD]:
            for pattern in _BY_WORD[texts[k]]:
                self.words.setdefault(pattern, []).append(starts[k])


class Anchored:
    """A compiled pattern and where its matches can start: at a number (`numbers`), at one of `words`
    (whole words: the word after the start is one of them), or wherever `finder` matches."""

    __slots__ = ("before_numbers", "finder", "numbers", "pattern", "words")

    def __init__(
        self,
        pattern: re.Pattern[str],
        *,
        numbers: bool = False,
        words: Iterable[str] = (),
        finder: str | None = None,
        before_numbers: bool = False,
    ) -> None:
        self.pattern = pattern
        self.numbers = numbers
        self.words = frozenset(words)
        self.finder = re.compile(finder) if finder is not None else None
        self.before_numbers = before_numbers  # a name ([a-z-]) a space before a number: "amoxicillin 500"
        for word in self.words:
            _BY_WORD.setdefault(word, []).append(self)

    def starts(self, at: Anchors) -> list[int]:
        """Every place in `at.text` where a match may start, in order (computed once a text)."""
        found = at._starts.get(self)
        if found is not None:
            return found
        words = at.words.get(self, [])
        if self.numbers and not words and self.finder is None:
            found = at.numbers  # sorted, each once
        elif not self.numbers and not self.before_numbers and self.finder is None:
            found = words  # sorted, each once
        else:
            found = at.numbers + words if self.numbers else list(words)
            if self.before_numbers:
                found += _names_before_numbers(at)
            if self.finder is not None:
                search = self.finder.search
                text = at.text
                m = search(text)
                while m is not None:
                    found.append(m.start())
                    m = search(text, m.start() + 1)
            found = sorted(set(found))
        at._starts[self] = found
        return found

    def matches(self, at: Anchors, pos: int = 0, endpos: int | None = None) -> list[re.Match[str]]:
        """`list(self.pattern.finditer(at.text, pos, endpos))`, trying the pattern only where it may
        start. An `endpos` inside a word could end a word early, so there the whole range is searched."""
        text = at.text
        end = len(text) if endpos is None else min(endpos, len(text))
        if end < len(text) and not text[end - 1].isspace():
            return list(self.pattern.finditer(text, pos, end))
        return matches_at(self.pattern, text, self.starts(at), pos, end)

    def matches_in(self, at: Anchors, windows: Iterable[tuple[int, int]]) -> list[re.Match[str]]:
        """`matches` in each (start, end) window in turn (a window where no match can start is passed
        over at once)."""
        starts = self.starts(at)
        text = at.text
        out: list[re.Match[str]] = []
        for start, end in windows:
            if end < len(text) and not text[end - 1].isspace():
                out += self.pattern.finditer(text, start, end)
                continue
            first = bisect_left(starts, start)
            if first < len(starts) and starts[first] < end:
                out += matches_at(self.pattern, text, starts, start, end)
        return out


def matches_at(
    pattern: re.Pattern[str], text: str, starts: list[int], pos: int = 0, endpos: int | None = None
) -> list[re.Match[str]]:
    """`list(pattern.finditer(text, pos, endpos))` for a pattern that matches only at `starts` (sorted;
    more places are harmless) and never matches empty."""
    end = len(text) if endpos is None else endpos
    match = pattern.match
    out: list[re.Match[str]] = []
    after = pos  # where the last match ended: the next one starts there or later
    i = bisect_left(starts, pos)  # (indexes, not a slice: a long text's many windows stay linear)
    n = len(starts)
    while i < n:
        start = starts[i]
        if start >= end:
            break
        i += 1
        if start < after:
            continue
        m = match(text, start, end)
        if m is not None:
            out.append(m)
            after = max(m.end(), start + 1)
    return out


def first_words(spellings: Iterable[str]) -> frozenset[str]:
    """The words spellings open with ("p.o." opens with "p", "12-hourly" with "12"): where a pattern that
    matches whole spellings ("(?<![\\w.])(?:...)(?![\\w])") can start."""
    out = set()
    for spelling in spellings:
        m = _WORD.match(spelling)
        if m is None:
            raise ValueError(f"{spelling!r} does not open with a word")
        out.add(m[0])
    return frozenset(out)


# Read backwards from a number: the spaces before it, then a name of letters and hyphens.
_NAME_BACKWARDS = re.compile(r"\s+([a-z\-]+)")


def _names_before_numbers(at: Anchors) -> list[int]:
    """Where a name of letters and hyphens written right before a number and a space may start
    ("amoxicillin 500", "co-amoxiclav 625"): the start of the name, or after one of its hyphens."""
    if not at.numbers:
        return []
    backwards = at.text[::-1]
    size = len(backwards)
    out: list[int] = []
    for number in at.numbers:
        m = _NAME_BACKWARDS.match(backwards, size - number)
        if m is not None:
            start = size - m.end()
            out.append(start)
            name = m[1]
            if "-" in name:
                end = size - m.start(1)
                out.extend(p for p in range(start + 1, end) if at.text[p - 1] == "-")
    return out
