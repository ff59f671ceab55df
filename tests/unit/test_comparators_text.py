"""Text scorers: the tokenizer, ROUGE-L against the reference package, lengths, chunking for embeddings."""

from random import Random

import numpy as np
import pytest
from rouge_score import rouge_scorer

from comparators.scoring import METRICS, Comparison, Side
from comparators.text import (
    TokenCounts,
    chunk_for_embedding,
    lcs_length,
    length_ratio,
    rouge_l_f1,
    score_text,
    similarity_from_chunks,
)
from comparators.tokens import Tokenizer, scan, tokenize
from simulator import text
from simulator.drift import apply_drift


def side(text: str | None, finish: str | None = "stop", error: str | None = None) -> Side:
    return Side(
        status=200, error=error, total_ms=100.0, ttfb_ms=10.0, model="m", text=text, finish_reason=finish
    )


def comparison(primary: Side, other: Side) -> Comparison:
    return Comparison(route="chat", primary=primary, other=other, role="candidate")


# --- tokenizer -------------------------------------------------------------------------------


def test_tokenizer_keeps_numbers_vitals_and_malay_words_whole() -> None:
    sample = "BP 130/85 mmHg, Temp 37.8 °C. SpO2 98%. Paracetamol 500mg; paru-paru, Café, DEMAM. Don't."
    assert tokenize(sample) == [
        "bp", "130/85", "mmhg", "temp", "37.8", "c", "spo2", "98", "paracetamol", "500", "mg",
        "paru-paru", "café", "demam", "don't",
    ]  # fmt: skip


def test_tokenizer_reads_unicode_variants_one_way() -> None:
    # decomposed accent, full-width letters, the micro sign and the one-character degree Celsius
    assert tokenize("cafe\u0301 ＭＧ 200 µg 38 ℃") == tokenize("café mg 200 μg 38 °C")
    assert tokenize("1,000 units 37.8.") == ["1,000", "units", "37.8"]


def test_tokenize_is_scan_less_punctuation() -> None:
    sample = "Straße ǅ İ ﬁ ½ ٣٤ 12,000.5/3 don't paru-paru café e\u0301 𝟓 _x_ a_b — ?!. BP 120/80 mmHg"
    ascii_sample = "BP 120/80 MMHG, Don'T; PARU-PARU x_Y 12,000.50 A.B.C SpO2 98%"
    no_underscore = "cafe\u0301 e\u0301\u0301x paru-\u0301paru don't Don’t -x 'y 1,000.5/2 ǅ İ 𝟓x x² Ⅻ"
    for words in (sample, ascii_sample, no_underscore, no_underscore.encode("ascii", "ignore").decode()):
        assert tokenize(words) == [t.text for t in scan(words) if t.kind != "punct"]


def test_scan_keeps_punctuation_with_offsets() -> None:
    tokens = scan("No fever, cough.")
    assert [(t.text, t.kind) for t in tokens] == [
        ("no", "word"), ("fever", "word"), (",", "punct"), ("cough", "word"), (".", "punct"),
    ]  # fmt: skip
    assert [(t.start, t.end) for t in tokens][1] == (3, 8)


# --- ROUGE-L ---------------------------------------------------------------------------------


def test_rouge_l_by_hand() -> None:
    assert rouge_l_f1("the cat sat on the mat", "the cat sat on the mat") == 1.0
    # LCS of "a b c d" and "a c e" is "a c": P = 2/3, R = 2/4, F1 = 2PR/(P+R) = 4/7
    assert rouge_l_f1("a b c d", "a c e") == pytest.approx(4 / 7, abs=1e-15)
    assert rouge_l_f1("", "") == 0.0  # as rouge_score: no tokens, no score
    assert rouge_l_f1("fever", "") == 0.0
    assert rouge_l_f1("...", "fever") == 0.0  # punctuation only is no tokens
    assert lcs_length(["a", "b", "c", "d"], ["a", "c", "e"]) == 2


def corpus(n: int) -> list[tuple[str, str]]:
    generators = (text.soap_note, text.chat_answer, text.guideline_snippet)
    pairs = []
    for seed in range(n):
        rng = Random(seed)
        note = generators[seed % 3](rng, "en" if seed % 2 else "ms")
        if seed % 7 == 0:  # long answers too, where the LCS is long
            note = " ".join(generators[(seed + k) % 3](rng, "en") for k in range(6))
        drifted = apply_drift(
            note,
            rng,
            substitution=rng.random() * 0.4,
            drop_words=rng.random() * 0.2,
            numbers=rng.random() * 0.3,
            negation=rng.random() * 0.3,
        )
        pairs.append((note, drifted))
    pairs += [("", ""), ("fever", ""), ("", "demam"), ("a a a", "a"), ("x y", "y x"), ("same", "same")]
    return pairs


def test_rouge_l_fast_path_equals_rouge_score_exactly() -> None:
    reference = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False, tokenizer=Tokenizer())
    pairs = corpus(240)
    assert len({a for a, _ in pairs}) > 200
    for a, b in pairs:
        expected = reference.score(a, b)["rougeL"].fmeasure
        assert abs(rouge_l_f1(a, b) - expected) < 1e-12, (a, b)
        assert rouge_l_f1(a, b) == rouge_l_f1(b, a)  # F1 is symmetric, bit for bit


def test_rouge_l_beyond_the_basic_plane() -> None:
    # more distinct tokens than the Basic Multilingual Plane has code points below the surrogates
    a = [f"w{i}" for i in range(60_000)]
    b = [*a[::2], "x"]
    assert lcs_length(a, b) == 30_000


# --- score_text ------------------------------------------------------------------------------


def test_identical_texts_score_one() -> None:
    note = text.soap_note(Random(1), "en")
    result = score_text(comparison(side(note), side(note)))
    assert result.metrics == {"rouge_l_f1": 1.0, "length_ratio": 1.0, "finish_match": 1.0}
    assert result.findings == []


def test_a_paraphrase_keeps_a_high_rouge() -> None:
    primary = "The patient has had a fever for three days and should take paracetamol 500 mg."
    other = "The patient has had fever for 3 days and should take paracetamol 500 mg."
    result = score_text(comparison(side(primary), side(other, finish="length")))
    # 15 and 14 tokens, LCS 13: P = 13/14, R = 13/15
    assert result.metrics["rouge_l_f1"] == pytest.approx(2 * 13 / 29)
    assert result.metrics["length_ratio"] == pytest.approx(14 / 15)
    assert result.metrics["finish_match"] == 0.0


def test_finish_match_only_when_both_sides_know() -> None:
    result = score_text(comparison(side("a b", finish=None), side("a b")))
    assert "finish_match" not in result.metrics
    assert score_text(comparison(side("a", "STOP"), side("a", "stop"))).metrics["finish_match"] == 1.0


def test_nothing_when_a_side_has_no_text() -> None:
    assert score_text(comparison(side("fever"), side(None, error="timeout"))).metrics == {}
    assert score_text(comparison(side(None), side("demam"))).metrics == {}


def test_length_ratio_when_empty() -> None:
    assert length_ratio(0, 0) == 1.0
    assert length_ratio(0, 5) == 5.0
    assert length_ratio(4, 0) == 0.0
    assert score_text(comparison(side(""), side(""))).metrics["length_ratio"] == 1.0


def test_score_text_emits_only_contract_metrics() -> None:
    result = score_text(comparison(side("a b c"), side("a b")))
    assert set(result.metrics) <= set(METRICS)


# --- chunking and similarity ------------------------------------------------------------------


def words_counter(piece: str) -> int:
    """A stand-in for a model tokenizer: one token a word, plus two specials."""
    return len(piece.split()) + 2


def test_a_short_text_is_one_chunk() -> None:
    assert chunk_for_embedding("Fever for 3 days.", words_counter, window=10) == ["Fever for 3 days."]
    assert chunk_for_embedding("   ", words_counter, window=10) == []


@pytest.mark.parametrize("window", [5, 8, 12, 40])
def test_chunks_fit_and_keep_every_word(window: int) -> None:
    long = " ".join(text.soap_note(Random(seed), "en") for seed in range(5)) + " " + "x" * 50
    chunks = chunk_for_embedding(long, words_counter, window)
    assert all(words_counter(c) <= window for c in chunks)
    assert " ".join(chunks).split() == long.split()


def test_counting_in_bulk_changes_no_chunk_and_counts_each_text_once() -> None:
    asked: list[str] = []
    bulk_calls: list[list[str]] = []

    def one(t: str) -> int:
        asked.append(t)
        return words_counter(t)

    def many(texts: list[str]) -> list[int]:
        bulk_calls.append(texts)
        return [words_counter(t) for t in texts]

    long = " ".join(text.soap_note(Random(seed), "ms") for seed in range(4))
    counts = TokenCounts(one, many)
    counts.prefill([long, long])
    assert bulk_calls == [[long]]  # duplicates asked once
    assert chunk_for_embedding(long, counts, 12) == chunk_for_embedding(long, words_counter, 12)
    assert len(bulk_calls) == 2  # the sentences, in one call
    assert len(asked) == len(set(asked))  # nothing counted twice one by one
    assert long not in asked  # the whole text came from the bulk call


def test_sentences_stay_whole_when_they_fit() -> None:
    sample = "One two three. Four five six. Seven eight nine."
    # a sentence costs 3 words, a chunk 2 specials more
    assert chunk_for_embedding(sample, words_counter, window=7) == [
        "One two three.",
        "Four five six.",
        "Seven eight nine.",
    ]
    assert chunk_for_embedding(sample, words_counter, window=8) == [
        "One two three. Four five six.",
        "Seven eight nine.",
    ]
    assert chunk_for_embedding(sample, words_counter, window=11) == [sample]


def test_a_word_longer_than_the_window_is_split_not_cut() -> None:
    def chars(piece: str) -> int:
        return len(piece)

    chunks = chunk_for_embedding("a" * 25, chars, window=10)
    assert chunks == ["a" * 10, "a" * 10, "a" * 5]


def test_overlap_repeats_the_previous_sentence() -> None:
    sample = "One two three. Four five six. Seven eight nine."
    assert chunk_for_embedding(sample, words_counter, window=9, overlap=3) == [
        "One two three. Four five six.",
        "Four five six. Seven eight nine.",
    ]
    with pytest.raises(ValueError, match="overlap"):
        chunk_for_embedding(sample, words_counter, window=9, overlap=5)
    with pytest.raises(ValueError, match="window"):
        chunk_for_embedding(sample, words_counter, window=2)


def test_similarity_from_chunks() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(4, 16)).astype(np.float32)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    assert similarity_from_chunks(a, a.copy()) == 1.0
    b = np.concatenate([a[:3], -a[3:]])  # one passage turned around
    # best matches: 3 of 4 chunks match exactly each way; the odd one takes its best other match
    score = similarity_from_chunks(a, b)
    assert score == pytest.approx(similarity_from_chunks(b, a))
    assert 0.5 < score < 1.0
    one = np.array([[1.0, 0.0]])
    other = np.array([[0.6, 0.8]])
    assert similarity_from_chunks(one, other) == pytest.approx(0.6)  # one chunk a side: plain cosine
    assert similarity_from_chunks(one[:0], one[:0]) == 1.0
    assert similarity_from_chunks(one, one[:0]) == 0.0
