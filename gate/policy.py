"""The gate's policy: limits per metric, route and tenant, read from a TOML file (defaults from the plan)."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# What the judge can judge, by the names its verdicts use.
GATE_METRICS: tuple[str, ...] = (
    "error_rate",
    "candidate_p95_ms",
    "semantic_similarity",
    "rouge_l_f1",
    "wer",
    "cer",
    "fact_mismatch_rate",
    "omission_rate",
    "embed_rank_correlation",
    "rerank_top1_match",
)

_WINDOW = re.compile(r"^(\d+)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class PolicyError(ValueError):
    """A policy file that cannot be used; the message is one sentence for the user."""


class RoutePolicy(BaseModel):
    """The effective limits for one tenant x route; metrics named in `skip` are not judged."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(0.05, gt=0, lt=0.5)
    no_go_alpha: float = Field(0.2, gt=0, lt=0.5)
    intervals: Literal["anytime", "per_look"] = "anytime"
    window: str = "24h"
    min_pairs: int = Field(30, ge=1)
    max_missing_rate: float = Field(0.2, ge=0, le=1)
    candidate_timeout_ms: float = Field(10_000, gt=0)
    error_rate_max: float = Field(0.05, ge=0, le=1)
    candidate_p95_ms_max: float = Field(2000, gt=0)
    semantic_similarity_min: float = Field(0.55, ge=-1, le=1)
    semantic_margin_vs_noise: float = Field(0.03, ge=0)
    min_noise_pairs: int = Field(10, ge=1)
    rouge_l_min: float = Field(0.2, ge=0, le=1)
    wer_max: float = Field(0.15, ge=0)
    cer_max: float = Field(0.10, ge=0)
    fact_mismatch_rate_max: float = Field(0.005, ge=0, le=1)
    fact_margin_vs_noise: float = Field(0.005, ge=0, le=1)
    omission_rate_max: float = Field(0.02, ge=0, le=1)
    omission_margin_vs_noise: float = Field(0.01, ge=0, le=1)
    critical_missing_max: float = Field(0.02, ge=0, le=1)
    require_review: bool = True
    embed_rank_correlation_min: float = Field(0.9, ge=-1, le=1)
    rerank_top1_match_min: float = Field(0.8, ge=0, le=1)
    critical: list[str] = Field(default_factory=lambda: ["fact_mismatch_rate"])
    required: list[str] = Field(default_factory=list)
    skip: list[str] = Field(default_factory=list)

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        if not _WINDOW.match(v):
            raise ValueError(f"window must be a number and a unit s, m, h or d (e.g. 24h), got {v!r}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> RoutePolicy:
        for name in self.critical:
            if name in self.skip:
                raise ValueError(f"{name} is both critical and skipped: a critical metric must be judged")
        for name in self.required:
            if name in self.skip:
                raise ValueError(f"{name} is both required and skipped")
        if self.candidate_p95_ms_max > self.candidate_timeout_ms:
            raise ValueError(
                f"candidate_p95_ms_max ({self.candidate_p95_ms_max:g} ms) is above candidate_timeout_ms "
                f"({self.candidate_timeout_ms:g} ms), after which an answer counts as an error"
            )
        return self

    @field_validator("critical", "required", "skip")
    @classmethod
    def _metric_names(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - set(GATE_METRICS))
        if unknown:
            raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(GATE_METRICS)}")
        return v

    @property
    def window_s(self) -> int:
        m = _WINDOW.match(self.window)
        assert m is not None  # checked by the validator
        return int(m.group(1)) * _SECONDS[m.group(2)]

    @property
    def version(self) -> str:
        return _digest(self.model_dump(mode="json"))


class Policy(BaseModel):
    """Defaults, then per-route overrides, then per-tenant overrides (all routes, then one route)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: RoutePolicy = Field(default_factory=RoutePolicy)
    routes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # tenant -> overrides for all its routes; a "routes" key inside holds route -> overrides for that tenant.
    tenants: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _every_combination_is_valid(self) -> Policy:
        combos: list[tuple[str | None, str]] = [(None, route) for route in self.routes]
        for tenant, over in self.tenants.items():
            routes = over.get("routes", {})
            if not isinstance(routes, dict):
                raise ValueError(f"tenants.{tenant}.routes must be a table of routes")
            combos += [(tenant, route) for route in sorted({*self.routes, *routes, "other"})]
        for who, route in combos:
            try:
                self.for_(who, route)
            except ValidationError as e:
                where = f"tenants.{who}, route {route}" if who else f"routes.{route}"
                raise ValueError(f"{where}: {_first_error(e)}") from None
        return self

    def for_(self, tenant: str | None, route: str) -> RoutePolicy:
        """The effective policy of tenant x route (tenant None: the route's defaults)."""
        merged = self.defaults.model_dump()
        merged.update(self.routes.get(route, {}))
        tenant_over = dict(self.tenants.get(tenant, {})) if tenant is not None else {}
        tenant_routes = tenant_over.pop("routes", {})
        merged.update(tenant_over)
        merged.update(tenant_routes.get(route, {}))
        return RoutePolicy.model_validate(merged)

    @property
    def version(self) -> str:
        return _digest(self.model_dump(mode="json"))


def _digest(obj: Any) -> str:
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def load_policy(path: str | Path | None = None) -> Policy:
    """Read a policy file (None: the packaged default_policy.toml); raises PolicyError with one sentence."""
    try:
        if path is None:
            text = resources.files("gate").joinpath("default_policy.toml").read_text(encoding="utf-8")
            name = "the packaged default policy"
        else:
            text = Path(path).read_text(encoding="utf-8")
            name = str(path)
    except OSError as e:
        raise PolicyError(f"Cannot read the policy file {path}: {e.strerror or e}.") from e
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"The policy file {name} is not valid TOML: {e}.") from e
    try:
        return Policy.model_validate(data)
    except ValidationError as e:
        raise PolicyError(f"The policy file {name} is invalid at {_first_error(e)}.") from e
    except ValueError as e:
        raise PolicyError(f"The policy file {name} is invalid: {e}.") from e
