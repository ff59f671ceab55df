"""The store's tables: pairs and scores (metrics only), findings and payloads (clinical), unscored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, Index, Table, TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every dialect: SQLite keeps naive UTC text, PostgreSQL a timestamptz."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive datetime is ambiguous (local? UTC?); refusing it keeps every row comparable.
            raise ValueError("the store takes timezone-aware datetimes only")
        value = value.astimezone(UTC)
        # SQLite compares datetimes as text, so every value must be written in one zone, without offset.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_field(**kwargs: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kwargs)


class PairRow(SQLModel, table=True):
    """One mirrored exchange: who, when, and each side's status, timing and identity — no content."""

    __tablename__ = "pairs"
    __table_args__ = (
        Index("ix_pairs_tenant_route_captured", "tenant", "route", "captured_at"),
        Index("ix_pairs_replay", "replay"),
    )

    key: str = Field(primary_key=True)  # the pairs-stream entry id
    exchange_id: str = Field(index=True)
    tenant: str
    route: str
    replay: str | None = None  # replay run id; NULL for live traffic
    captured_at: datetime = utc_field()
    paired_at: datetime | None = utc_field(default=None)
    scored_at: datetime = utc_field()

    primary_status: int | None = None
    primary_error: str | None = None
    primary_total_ms: float
    primary_ttfb_ms: float | None = None
    primary_model: str | None = None
    primary_model_version: str | None = None
    primary_gpu: str | None = None

    # NULL throughout when the pair has no candidate answer at all.
    candidate_status: int | None = None
    candidate_error: str | None = None
    candidate_total_ms: float | None = None
    candidate_ttfb_ms: float | None = None
    candidate_model: str | None = None
    candidate_model_version: str | None = None
    candidate_gpu: str | None = None

    has_secondary: bool = False
    secondary_status: int | None = None
    secondary_error: str | None = None
    secondary_total_ms: float | None = None
    secondary_ttfb_ms: float | None = None
    secondary_model: str | None = None
    secondary_model_version: str | None = None
    secondary_gpu: str | None = None


class ScoreRow(SQLModel, table=True):
    """A pair's metrics against the primary for one role, one column per name in scoring.METRICS.

    tenant, route, captured_at and replay are copied from the pair so aggregates need no join.
    Adding a metric to METRICS means adding its column here (a test checks they agree) and a migration.
    """

    __tablename__ = "scores"
    __table_args__ = (Index("ix_scores_tenant_route_captured", "tenant", "route", "captured_at"),)

    pair_key: str = Field(primary_key=True, foreign_key="pairs.key", ondelete="CASCADE")
    role: str = Field(primary_key=True)  # "candidate" or "secondary"
    tenant: str
    route: str
    captured_at: datetime = utc_field()
    replay: str | None = None

    status_match: float | None = None
    latency_delta_ms: float | None = None
    latency_ratio: float | None = None
    ttfb_delta_ms: float | None = None
    tokens_per_s: float | None = None
    tokens_per_s_primary: float | None = None
    completion_tokens: float | None = None
    completion_tokens_primary: float | None = None
    semantic_similarity: float | None = None
    rouge_l_f1: float | None = None
    length_ratio: float | None = None
    finish_match: float | None = None
    fact_mismatches: float | None = None
    facts_primary: float | None = None
    negation_flips: float | None = None
    clinical_ok: float | None = None
    clinical_critical: float | None = None
    clinical_contradictions: float | None = None
    clinical_omissions: float | None = None
    clinical_additions: float | None = None
    clinical_unscorable: float | None = None
    soap_sections_missing: float | None = None
    soap_min_section_similarity: float | None = None
    json_differences: float | None = None
    json_missing: float | None = None
    json_extra: float | None = None
    json_type_changes: float | None = None
    json_value_changes: float | None = None
    json_order_changes: float | None = None
    wer: float | None = None
    cer: float | None = None
    words_primary: float | None = None
    empty_transcripts: float | None = None
    embed_cosine_mean: float | None = None
    embed_cosine_min: float | None = None
    embed_rank_correlation: float | None = None
    embed_topk_overlap: float | None = None
    rerank_kendall_tau: float | None = None
    rerank_top1_match: float | None = None
    rerank_top3_overlap: float | None = None


class FindingRow(SQLModel, table=True):
    """One concrete difference found in a pair.

    Its excerpts quote clinical text, so findings follow the payloads' retention, not the metrics':
    `purge_payloads` deletes them together.
    """

    __tablename__ = "findings"

    id: int | None = Field(default=None, primary_key=True)
    pair_key: str = Field(foreign_key="pairs.key", ondelete="CASCADE", index=True)
    role: str
    kind: str = Field(index=True)
    where: str
    primary_excerpt: str
    other_excerpt: str


class PayloadRow(SQLModel, table=True):
    """The clinical content of a pair (request, the answers' text), purged on its own retention."""

    __tablename__ = "payloads"

    pair_key: str = Field(primary_key=True, foreign_key="pairs.key", ondelete="CASCADE")
    request: bytes
    primary_text: str | None = None
    candidate_text: str | None = None
    secondary_text: str | None = None
    stored_at: datetime = utc_field()


class UnscoredRow(SQLModel, table=True):
    """How many pairs the worker sampled out (not scored) while it fell behind, per tenant, route and hour."""

    __tablename__ = "unscored"

    tenant: str = Field(primary_key=True)
    route: str = Field(primary_key=True)
    hour: datetime = utc_field(primary_key=True)  # the start of the UTC hour
    count: int = 0


def table(model: type[SQLModel]) -> Table:
    """The Core table behind a model, for inserts, upserts and aggregates."""
    t = getattr(model, "__table__", None)
    if not isinstance(t, Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return t


PAIRS = table(PairRow)
SCORES = table(ScoreRow)
FINDINGS = table(FindingRow)
PAYLOADS = table(PayloadRow)
UNSCORED = table(UnscoredRow)
