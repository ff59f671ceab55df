"""Free-text scorers (chat, reason, vision): ROUGE-L, length, finish reason; chunking for embeddings."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from itertools import chain

import numpy as np
import numpy.typing as npt
from rapidfuzz.distance import LCSseq

from comparators.scoring import Comparison, Result
from comparators.tokens import tokenize

# rapidfuzz compares strings fastest, so each distinct token becomes one code point; the surrogate block
# is skipped because a lone surrogate is not a valid character to every backend.
_SURROGATES = 0xD800
_SURROGATE_SPAN = 0x800


def _as_codes(a: Sequence[str], b: Sequence[str]) -> tuple[str, str]:
    """Each distinct token as one code point, numbered in order of first appearance (in `a`, then `b`)."""
    codes = {
        token: chr(n if n < _SURROGATES else n + _SURROGATE_SPAN)
        for n, token in enumerate(dict.fromkeys(chain(a, b)))
    }
    return "".join(map(codes.__getitem__, a)), "".join(map(codes.__getitem__, b))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences (rapidfuzz's bit-parallel LCS)."""
    if not a or not b:
        return 0
    if len(a) + len(b) > 0x10FFFF - _SURROGATE_SPAN:  # could run out of code points: hash the tokens
        return int(LCSseq.similarity(list(a), list(b)))
    codes_a, codes_b = _as_codes(a, b)
    return int(LCSseq.similarity(codes_a, codes_b))


def rouge_l_f1_tokens(target: Sequence[str], prediction: Sequence[str]) -> float:
    """ROUGE-L F1 exactly as `rouge_score` computes it: 0 when either side is empty, and the same
    arithmetic in the same order, so the floats are identical, not merely close."""
    if not target or not prediction:
        return 0.0
    lcs = lcs_length(target, prediction)
    precision = lcs / len(prediction)
    recall = lcs / len(target)
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def rouge_l_f1(a: str, b: str) -> float:
    """ROUGE-L F1 of `b` (the prediction) against `a` (the target), on `comparators.tokens` tokens, no
    stemming. F1 is symmetric, so the order only matters to match the reference call exactly."""
    return rouge_l_f1_tokens(tokenize(a), tokenize(b))


def length_ratio(primary_tokens: int, other_tokens: int) -> float:
    """Other's length over the primary's. Both empty is 1; an empty primary counts as one token, so
    the ratio stays finite (a float column and JSON both reject infinity)."""
    if primary_tokens == 0 and other_tokens == 0:
        return 1.0
    return other_tokens / max(primary_tokens, 1)


def score_text(c: Comparison) -> Result:
    """rouge_l_f1, length_ratio and (when both sides report one) finish_match. Nothing when either side
    has no text: the common scorer already reports errors."""
    result = Result()
    if c.primary.text is None or c.other.text is None:
        return result
    primary = tokenize(c.primary.text)
    other = tokenize(c.other.text)
    result.metrics["rouge_l_f1"] = rouge_l_f1_tokens(primary, other)
    result.metrics["length_ratio"] = length_ratio(len(primary), len(other))
    if c.primary.finish_reason is not None and c.other.finish_reason is not None:
        same = c.primary.finish_reason.casefold() == c.other.finish_reason.casefold()
        result.metrics["finish_match"] = 1.0 if same else 0.0
    return result


# A sentence ends at . ! ? (or a line break) followed by space; "37.8" and "e.g.x" do not split.
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+|\n+")


def _split_sentences(text: str) -> list[str]:
    return [s for s in (part.strip() for part in _SENTENCE_END.split(text)) if s]


def _split_chars(word: str, fits: Callable[[str], bool]) -> list[str]:
    """A single word too long for the window (a URL, a base64 blob): the longest prefixes that fit."""
    pieces: list[str] = []
    while word:
        low, high = 1, len(word)
        while low < high:  # longest prefix that fits, by bisection
            mid = (low + high + 1) // 2
            if fits(word[:mid]):
                low = mid
            else:
                high = mid - 1
        pieces.append(word[:low])
        word = word[low:]
    return pieces


def _pack(
    pieces: list[str], count_tokens: Callable[[str], int], window: int, overlap: int, sep: str
) -> list[str]:
    """Greedy packing of pieces into chunks of at most `window` tokens. Pieces are counted once and the
    sum is the estimate; each chunk is then counted whole, and shortened if joining changed the count
    (special tokens, merges across the separator)."""
    overhead = count_tokens("")
    costs = [max(count_tokens(p) - overhead, 0) for p in pieces]
    chunks: list[str] = []
    start = 0
    while start < len(pieces):
        end, used = start, overhead
        while end < len(pieces) and (end == start or used + costs[end] <= window):
            used += costs[end]
            end += 1
        while end - start > 1 and count_tokens(sep.join(pieces[start:end])) > window:
            end -= 1
        chunks.append(sep.join(pieces[start:end]))
        if end >= len(pieces):
            break
        # Repeat trailing pieces worth at most `overlap` tokens, always moving forward by one piece.
        back, carried = end, 0
        while back - 1 > start and carried + costs[back - 1] <= overlap:
            back -= 1
            carried += costs[back]
        # The next chunk must hold at least one new piece; if the overlap leaves no room, drop it.
        start = back if overhead + carried + costs[end] <= window else end
    return chunks


class TokenCounts:
    """`count_tokens` remembered: each text is counted once however often the chunker weighs it, and
    with `count_many` (one call for many texts, as a tokenizer's batch call) counted ahead in bulk."""

    def __init__(
        self,
        count_tokens: Callable[[str], int],
        count_many: Callable[[list[str]], list[int]] | None = None,
    ) -> None:
        self._one = count_tokens
        self._many = count_many
        self._counted: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        if text not in self._counted:
            self._counted[text] = self._one(text)
        return self._counted[text]

    def prefill(self, texts: Sequence[str]) -> None:
        todo = list(dict.fromkeys(t for t in texts if t not in self._counted))
        if self._many is not None and todo:
            self._counted.update(zip(todo, self._many(todo), strict=True))


def chunk_for_embedding(
    text: str, count_tokens: Callable[[str], int], window: int, overlap: int = 0
) -> list[str]:
    """Split `text` into chunks of at most `window` tokens (as `count_tokens` counts them, special
    tokens included) by sentence, a too-long sentence by word, and a too-long word by character.
    Nothing is dropped: with overlap 0 the chunks hold every word of the text, in order. `overlap`
    repeats up to that many tokens of whole pieces at the start of the next chunk; it defaults to 0
    because `similarity_from_chunks` weighs each chunk once and overlap would count the shared
    sentences twice."""
    if not isinstance(count_tokens, TokenCounts):
        count_tokens = TokenCounts(count_tokens)  # a piece is counted once, however often weighed
    if count_tokens("x") > window:
        raise ValueError(f"a window of {window} tokens cannot hold any text")
    if not 0 <= overlap < window // 2:
        raise ValueError(f"overlap must be at least 0 and under half the window, got {overlap}")
    if not text.strip():
        return []

    def fits(piece: str) -> bool:
        return count_tokens(piece) <= window

    if fits(text):
        return [text.strip()]
    pieces: list[str] = []
    sentences = _split_sentences(text)
    count_tokens.prefill(sentences)
    for sentence in sentences:
        if fits(sentence):
            pieces.append(sentence)
            continue
        words: list[str] = []
        for word in sentence.split():
            words.extend([word] if fits(word) else _split_chars(word, fits))
        pieces.extend(_pack(words, count_tokens, window, 0, " "))
    return _pack(pieces, count_tokens, window, overlap, " ")


FloatArray = npt.NDArray[np.floating]


def similarity_from_chunks(a: FloatArray, b: FloatArray) -> float:
    """One similarity for two texts embedded chunk by chunk ([n_chunks, dim] each).

    Symmetric mean of best matches: every chunk of `a` takes its most similar chunk of `b`, and the
    other way round; the two means are averaged. With one chunk a side it is plain cosine (the short
    answers), and for long ones a changed or missing passage pulls the score down instead of being
    averaged away in a mean vector, while moved chunk boundaries cost little. Rows are normalised
    again so slightly off-unit input still gives a cosine. Identical inputs give exactly 1.0."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"chunk embeddings must be [n, dim] of one dim, got {a.shape} and {b.shape}")
    if a.shape[0] == 0 or b.shape[0] == 0:  # a blank text has no chunks: like only another blank
        return 1.0 if a.shape[0] == b.shape[0] else 0.0
    if a.shape == b.shape and np.array_equal(a, b):
        return 1.0  # the arithmetic below can land one ulp under 1
    unit_a = _unit_rows(a)
    unit_b = _unit_rows(b)
    cosines = unit_a @ unit_b.T
    forward = float(cosines.max(axis=1).mean())
    backward = float(cosines.max(axis=0).mean())
    return min(max((forward + backward) / 2, -1.0), 1.0)


def _unit_rows(x: FloatArray) -> npt.NDArray[np.float64]:
    rows = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    # A zero row (an empty chunk's embedding, if a model gives one) stays zero: similar to nothing.
    unit: npt.NDArray[np.float64] = np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
    return unit
