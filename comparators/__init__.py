"""Scorers for primary-vs-candidate pairs (semantic drift, WER, clinical facts, latency); see issue 4."""
