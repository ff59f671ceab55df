"""What every scorer takes and gives: two extracted sides in, named numbers and findings out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Every metric a scorer may emit, with what it means. The store has one column per name; a scorer
# emitting any other name is a bug (a test checks the scorers against this list).
METRICS: dict[str, str] = {
    # every route
    "status_match": "1 if both sides answered with the same status class (2xx, 4xx, 5xx, none)",
    "latency_delta_ms": "other side's total time minus the primary's, ms",
    "latency_ratio": "other side's total time over the primary's",
    "ttfb_delta_ms": "other side's time to first byte/token minus the primary's, ms (streams)",
    "tokens_per_s": "other side's completion tokens per second of generation",
    "tokens_per_s_primary": "the primary's completion tokens per second of generation",
    "completion_tokens": "other side's completion tokens (usage, or counted words when absent)",
    "completion_tokens_primary": "the primary's completion tokens",
    # text: chat, reason, vision
    "semantic_similarity": "cosine of the two answers' embeddings (long texts chunked, not truncated)",
    "rouge_l_f1": "ROUGE-L F1, Unicode tokens, no stemming",
    "length_ratio": "other side's length in tokens over the primary's",
    "finish_match": "1 if both sides stopped for the same reason",
    # clinical facts: text and transcripts (comparators/facts.py, comparators/align.py, docs/CLINICAL.md)
    "fact_mismatches": "clinical-fact differences of any kind and severity",
    "facts_primary": "typed clinical facts read in the primary's answer",
    "negation_flips": "findings or test results present on one side and absent on the other",
    "clinical_ok": "1 when there is no critical contradiction",
    "clinical_critical": "critical contradictions (drug, dose, route, frequency, allergy, side, value...)",
    "clinical_contradictions": "contradictions of any severity",
    "clinical_omissions": "critical or major facts of the primary that the other side leaves out",
    "clinical_additions": "critical or major facts only the other side states",
    "clinical_unscorable": "1 when a text could not be read for facts (empty, too long, not text)",
    "soap_sections_missing": "S/O/A/P sections present on one side only",
    "soap_min_section_similarity": "lowest ROUGE-L F1 over the SOAP sections both sides have",
    # structured output: JSON bodies and tool calls
    "json_differences": "structural differences by field path (all kinds)",
    "json_missing": "fields the primary has and the other side lacks",
    "json_extra": "fields the other side has and the primary lacks",
    "json_type_changes": "fields whose JSON type differs",
    "json_value_changes": "fields whose value differs",
    "json_order_changes": "arrays or objects with the same members in another order",
    # speech: audio
    "wer": "word error rate after the pinned normalization (a disagreement rate between two systems)",
    "cer": "character error rate after the same normalization",
    "words_primary": "words in the primary's normalized transcript",
    "empty_transcripts": "transcripts that were empty: 0, 1 or 2",
    # embeddings
    "embed_cosine_mean": "mean per-input cosine (same model and dimension only)",
    "embed_cosine_min": "lowest per-input cosine (same model and dimension only)",
    "embed_rank_correlation": "Spearman correlation of the two sides' pairwise-similarity matrices",
    "embed_topk_overlap": "mean overlap of each input's nearest neighbours between the sides",
    # rerank
    "rerank_kendall_tau": "Kendall tau between the two orderings of the documents",
    "rerank_top1_match": "1 if both put the same document first",
    "rerank_top3_overlap": "share of the top 3 documents in common",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One concrete difference, for the dashboard and the gate's examples. Excerpts are short."""

    kind: str  # e.g. critical_contradiction, major_omission, missing_section, json_value_change
    where: str  # a field path, a SOAP section, a unit; "" when it has no place
    primary: str  # what the primary said (at most ~200 characters)
    other: str  # what the other side said


@dataclass
class Result:
    metrics: dict[str, float] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def add(self, other: Result) -> Result:
        self.metrics.update(other.metrics)
        self.findings.extend(other.findings)
        return self


@dataclass(frozen=True, slots=True)
class Side:
    """What scorers see of one answer, already extracted from its body by comparators/extract.py."""

    status: int | None
    error: str | None
    total_ms: float
    ttfb_ms: float | None
    model: str | None
    text: str | None = None  # chat content, or a transcript
    json: Any = None  # the parsed JSON answer's payload that matters (tool calls, JSON content)
    vectors: list[list[float]] | None = None  # embeddings, in input order
    ranking: list[int] | None = None  # rerank: document indexes, best first
    finish_reason: str | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Comparison:
    route: str  # a RouteKind value
    primary: Side
    other: Side
    role: str  # "candidate" or "secondary" (the noise floor)


Scorer = Callable[[Comparison], Result]
