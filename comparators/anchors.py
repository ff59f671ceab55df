"""Where in a text a pattern can start, found once per text, so that each pattern is tried only there.

Python's regex engine searches a pattern that opens with a look-behind or a word boundary by trying
all of it at every character of the text; only a pattern that opens with literal characters is found
by a fast scan. Most clinical patterns open with a number or with one of a few words, so the text's
words (runs of word characters, as `\\w+` finds them) are found once (`Anchors`), and each pattern
(`Anchored`) is matched only where a number or one of its first words begins. A pattern whose start
cannot be listed as whole words (a word that may be glued to what follows, "x5/7", "tablets") names a
`finder` instead: a pattern that matches wherever the pattern does (its opening words without the
leading look-behind), searched with the fast scan.

`Anchored.finditer` gives exactly the matches `re.Pattern.finditer` gives, provided every match starts
where its anchors say: the patterns are written next to their anchors in comparators/facts.py, and
tests/unit/test_clinical_anchors.py checks each pair on texts written to catch them out.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator

_WORD = re.compile(r"\w+")


class Anchors:
    """One text's words by their spelling, the starts of its numbers (words that open with a digit),
    and what each anchored pattern's starts came to (a pattern is scanned more than once a text)."""

    __slots__ = ("_starts", "numbers", "text", "words")

    def __init__(self, text: str) -> None:
        self.text = text
        self.numbers: list[int] = []
        self.words: dict[str, list[int]] = {}
        self._starts: dict[Anchored, list[int]] = {}
        words = self.words
        numbers = self.numbers
        for m in _WORD.finditer(text):
            word = m[0]
            start = m.start()
            if word[0].isdigit():
                numbers.append(start)
            positions = words.get(word)
            if positions is None:
                words[word] = [start]
            else:
                positions.append(start)


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

    def starts(self, at: Anchors) -> list[int]:
        """Every place in `at.text` where a match may start, in order (computed once a text)."""
        found = at._starts.get(self)
        if found is not None:
            return found
        if self.numbers and not self.words and self.finder is None:
            found = at.numbers  # sorted, each once
        else:
            found = list(at.numbers) if self.numbers else []
            positions = at.words
            for word in positions.keys() & self.words:
                found += positions[word]
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

    def finditer(self, at: Anchors, pos: int = 0, endpos: int | None = None) -> Iterator[re.Match[str]]:
        """`self.pattern.finditer(at.text, pos, endpos)`, trying the pattern only where it may start.
        An `endpos` inside a word could end a word early, so there the whole range is searched."""
        text = at.text
        end = len(text) if endpos is None else min(endpos, len(text))
        if end < len(text) and not text[end - 1].isspace():
            yield from self.pattern.finditer(text, pos, end)
            return
        starts = self.starts(at)
        match = self.pattern.match
        i = bisect_left(starts, pos)
        n = len(starts)
        while i < n:
            start = starts[i]
            if start >= end:
                return
            m = match(text, start, end)
            if m is None:
                i += 1
                continue
            yield m
            i = bisect_left(starts, max(m.end(), start + 1), i + 1)

    def search(self, at: Anchors, pos: int = 0, endpos: int | None = None) -> re.Match[str] | None:
        """`self.pattern.search(at.text, pos, endpos)`, the same way."""
        return next(self.finditer(at, pos, endpos), None)


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
