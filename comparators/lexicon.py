"""The clinical vocabularies (comparators/lexicon/*.txt) and the one pass that finds their terms in text.

Each file lists a canonical key and its spellings (English, Malay, abbreviations, brands). Terms are
found on word tokens through a first-word index, so a text is read in one pass however long the lists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from functools import cache
from importlib import resources
from typing import Any

# Words, numbers with inner separators ("co-amoxiclav", "rtk-ag", "b/p", "k+"), or one other character.
TOKEN = re.compile(r"[a-z0-9\u00c0-\uffff]+(?:['’\-/+.][a-z0-9\u00c0-\uffff]+)*\+?|[^\sa-z0-9]")
CATEGORIES = ("drugs", "allergens", "sites", "findings", "tests", "measures")


@dataclass(frozen=True, slots=True)
class Term:
    category: str  # one of CATEGORIES
    key: str  # the canonical key
    first: int  # token indexes, end exclusive
    last: int


def _term_maker() -> Callable[[str, str, int, int], Term]:
    """`Term(...)` at half the cost, for the many terms of a text: a frozen dataclass sets each field
    through `object.__setattr__`; its slots' own descriptors set them directly. The same object."""
    new = object.__new__
    category, key, first, last = (getattr(Term, f.name).__set__ for f in fields(Term))

    def make(c: str, k: str, a: int, b: int) -> Term:
        term = new(Term)
        category(term, c)
        key(term, k)
        first(term, a)
        last(term, b)
        return term

    return make


_term = _term_maker()


@dataclass(frozen=True, slots=True)
class Lexicon:
    # first word -> ((spelling's words, category, key), ...), longest spelling first
    index: dict[str, tuple[tuple[tuple[str, ...], str, str], ...]]
    by_category: dict[str, frozenset[str]]  # category -> its keys
    # first word -> ((length, spelling's words -> (category, key)), ...), longest first: the same
    # spellings as `index`, so that a place is tried once per length rather than once per spelling
    by_length: dict[str, tuple[tuple[int, dict[tuple[str, ...], tuple[str, str]]], ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        by_length: dict[str, tuple[tuple[int, dict[tuple[str, ...], tuple[str, str]]], ...]] = {}
        for first, entries in self.index.items():
            sizes: dict[int, dict[tuple[str, ...], tuple[str, str]]] = {}
            for spelling, category, key in entries:
                sizes.setdefault(len(spelling), {}).setdefault(spelling, (category, key))
            by_length[first] = tuple(sorted(sizes.items(), reverse=True))
        object.__setattr__(self, "by_length", by_length)

    def keys(self, category: str) -> frozenset[str]:
        return self.by_category.get(category, frozenset())

    def terms(self, words: list[str], positions: dict[str, list[int]] | None = None) -> list[Term]:
        """Every lexicon term in `words`, longest first at each place, never overlapping. `positions`:
        each word's indexes in `words` (comparators/assertion.py's Tokens), where already known."""
        found: list[Term] = []
        index = self.by_length
        i = 0
        # Only where a term can start: a listed first word, or a word with "/" or "+" in it.
        if positions is None:
            candidates = [k for k, w in enumerate(words) if w in index or "/" in w or "+" in w]
        else:
            candidates = [
                k
                for w in positions.keys() & index.keys() | {w for w in positions if "/" in w or "+" in w}
                for k in positions[w]
            ]
            candidates.sort()
        for at in candidates:
            if at < i:
                continue
            i = at
            matched = 0
            for size, spellings in index.get(words[i], ()):
                entry = spellings.get(tuple(words[i : i + size]))
                if entry is not None:
                    found.append(_term(entry[0], entry[1], i, i + size))
                    matched = size
                    break
            if not matched:
                combined = self._combination(words[i])
                if combined is not None:
                    found.append(Term("drugs", combined, i, i + 1))
            i += matched or 1
        return found

    def _combination(self, word: str) -> str | None:
        """A fixed combination written with "/" or "+" ("salmeterol/fluticasone", "amlo+perindopril"):
        its ingredients, sorted and joined by "+", when every part is a drug the lists know."""
        if "/" not in word and "+" not in word:
            return None
        ingredients: set[str] = set()
        for part in word.replace("+", "/").split("/"):
            entry = next(((c, k) for w, c, k in self.index.get(part, ()) if len(w) == 1), None)
            if entry is None or entry[0] != "drugs":
                return None
            ingredients.update(entry[1].split("+"))
        return "+".join(sorted(ingredients)) if len(ingredients) > 1 else None


def alternation(spellings: Iterable[str]) -> str:
    """A regex matching any of `spellings`, longest first, as a trie: "b(?:d|id)" rather than "bd|bid",
    which Python's engine tries far faster than a flat list of hundreds of alternatives. A space in a
    spelling matches any run of whitespace."""
    trie: dict[str, Any] = {}
    for spelling in spellings:
        node = trie
        for ch in spelling:
            node = node.setdefault(ch, {})
        node[""] = {}

    def pattern(node: dict[str, Any]) -> str:
        ends = "" in node
        branches = [
            (r"\s+" if ch == " " else re.escape(ch)) + pattern(child)
            for ch, child in sorted(node.items())
            if ch
        ]
        if not branches:
            return ""
        # Longer continuations first, so the longest spelling wins; an end here makes them optional.
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if ends else body

    return pattern(trie)


def words(text: str) -> frozenset[str]:
    """A set of words written as one string, as word lists in this package are."""
    return frozenset(text.split())


def words_of(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


def _spellings(spelling: str) -> set[tuple[str, ...]]:
    """A spelling as word tuples; a hyphenated one is also matched written with a space or joined."""
    variants = {spelling}
    if "-" in spelling:
        variants |= {spelling.replace("-", " "), spelling.replace("-", "")}
    return {tuple(words_of(v)) for v in variants if words_of(v)}


@cache
def load() -> Lexicon:
    entries: dict[str, dict[tuple[str, ...], tuple[str, str]]] = {}
    folder = resources.files("comparators") / "lexicon"
    for category in CATEGORIES:
        source = folder / f"{category}.txt"
        if not source.is_file():
            continue
        for line in source.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = [f.strip().lower() for f in line.split("|")]
            key = fields[0]
            for spelling in [key.replace("_", " "), *fields[1:]]:
                for words in _spellings(spelling):
                    entries.setdefault(words[0], {}).setdefault(words, (category, key))
    index = {
        first: tuple(
            (words, category, key)
            for words, (category, key) in sorted(by_words.items(), key=lambda kv: -len(kv[0]))
        )
        for first, by_words in entries.items()
    }
    by_category: dict[str, set[str]] = {}
    for entries_of_word in index.values():
        for _, category, key in entries_of_word:
            by_category.setdefault(category, set()).add(key)
    return Lexicon(index, {c: frozenset(k) for c, k in by_category.items()})
