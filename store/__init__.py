"""Persistence of exchanges, scores, verdicts and the audit log (SQLModel); see issue 4."""
