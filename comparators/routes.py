"""Which scorers each route kind runs, and the one call that runs them."""

from __future__ import annotations

from comparators.clinical import score_clinical
from comparators.common import score_common
from comparators.scoring import Comparison, Result, Scorer
from comparators.speech import score_speech
from comparators.structured import score_structured
from comparators.text import score_text
from comparators.vectors import score_embeddings, score_rerank

_TEXT: list[Scorer] = [score_common, score_text, score_clinical, score_structured]

# Keyed by RouteKind value; a kind without an entry gets what "other" gets.
SCORERS: dict[str, list[Scorer]] = {
    "chat": _TEXT,
    "reason": _TEXT,
    "vision": _TEXT,
    "audio": [score_common, score_speech, score_clinical],
    "embed": [score_common, score_embeddings],
    "rerank": [score_common, score_rerank],
    "other": [score_common],
}


def scorers_for(route: str) -> list[Scorer]:
    return SCORERS.get(route, SCORERS["other"])


def score(c: Comparison) -> Result:
    """Every scorer of the comparison's route, merged (later scorers never reuse an earlier one's names)."""
    result = Result()
    for scorer in scorers_for(c.route):
        result.add(scorer(c))
    return result
