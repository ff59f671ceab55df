"""The simulator's profile: per-tenant latency, errors and drift, built in code or read from TOML."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from random import Random
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shadowgate.settings import ConfigError

Role = Literal["primary", "candidate"]
RouteName = Literal["chat", "audio", "embed", "rerank"]
Rate = Annotated[float, Field(ge=0.0, le=1.0)]

_Z95 = 1.6448536269514722  # the standard normal's 95th percentile

# What each side answers as: OpenAI behind LiteLLM, or the clinic's own GPU server (vLLM).
_ROLE_DEFAULTS: dict[str, dict[str, Any]] = {
    "primary": {
        "models": {
            "chat": "gpt-4o-mini",
            "audio": "whisper-1",
            "embed": "text-embedding-3-small",
            "rerank": "rerank-v3.5",
        },
        "version": "openai-2024-07-18",
    },
    "candidate": {
        "models": {
            "chat": "llama-3.1-70b",
            "audio": "whisper-large-v3",
            "embed": "bge-m3",
            "rerank": "colbert-v2",
        },
        "version": "hi-end-vllm-0.6",
    },
}


class ProfileError(ConfigError, ValueError):
    """A profile file that cannot be used; the message is one sentence for the user."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Latency(_Frozen):
    """Time to first byte drawn from a lognormal fitted to a median and a 95th percentile."""

    median_ms: float = Field(default=300.0, ge=0.0)
    p95_ms: float = Field(default=900.0, ge=0.0)
    slowdown: float = Field(default=1.0, gt=0.0)
    route_multipliers: dict[RouteName, Annotated[float, Field(gt=0.0)]] = {}
    # Bigger requests take longer; it is what makes a 10-minute recording slower than a 10-second one.
    per_mb_ms: float = Field(default=0.0, ge=0.0)
    chunk_ms: float = Field(default=30.0, ge=0.0)
    max_ms: float = Field(default=120_000.0, gt=0.0)

    @model_validator(mode="after")
    def _p95_above_median(self) -> Latency:
        if self.p95_ms < self.median_ms:
            raise ValueError("latency p95_ms must be at least median_ms")
        return self

    def sample_ms(self, rng: Random, route: RouteName, size_bytes: int = 0) -> float:
        z = rng.gauss(0.0, 1.0)  # drawn even when unused, so the generator moves the same way
        base = 0.0
        if self.median_ms > 0:
            sigma = (math.log(max(self.p95_ms, self.median_ms)) - math.log(self.median_ms)) / _Z95
            base = self.median_ms * math.exp(sigma * z)
        total = (base + self.per_mb_ms * size_bytes / 1_000_000) * self.slowdown
        return min(total * self.route_multipliers.get(route, 1.0), self.max_ms)

    def chunk_delay_ms(self) -> float:
        return self.chunk_ms * self.slowdown


class Drift(_Frozen):
    substitution: Rate = 0.0
    drop_words: Rate = 0.0
    numbers: Rate = 0.0
    negation: Rate = 0.0

    @property
    def is_zero(self) -> bool:
        return not (self.substitution or self.drop_words or self.numbers or self.negation)


class TenantProfile(_Frozen):
    latency: Latency = Latency()
    error_rate: Rate = 0.0
    drift: dict[RouteName, Drift] = {}

    def drift_for(self, route: RouteName) -> Drift:
        return self.drift.get(route, Drift())


class SimulatorProfile(_Frozen):
    """One simulated server. A tenant's entry overrides only what it sets; the rest comes
    from `default`, so `[tenants.klinik-bayu.latency] slowdown = 3` is a whole override."""

    role: Role = "primary"
    seed: int = 0
    models: dict[RouteName, str] = {}
    version: str = ""
    gpu_ids: tuple[str, ...] = ("GPU-0", "GPU-1", "GPU-2", "GPU-3")
    embedding_dim: int = Field(default=384, ge=1, le=8192)
    tenant_header: str = "X-Tenant-ID"
    max_upload_mb: int = Field(default=512, ge=1)
    default: TenantProfile = TenantProfile()
    tenants: dict[str, TenantProfile] = {}

    @model_validator(mode="before")
    @classmethod
    def _fill_and_merge(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        role_defaults = _ROLE_DEFAULTS.get(str(data.get("role", "primary")), _ROLE_DEFAULTS["primary"])
        data["models"] = _merge(role_defaults["models"], _as_dict(data.get("models", {})))
        data.setdefault("version", role_defaults["version"])
        base = _as_dict(data.get("default", {}))
        data["tenants"] = {
            tenant: _merge(base, _as_dict(override))
            for tenant, override in _as_dict(data.get("tenants", {})).items()
        }
        return data

    def for_tenant(self, tenant: str | None) -> TenantProfile:
        if tenant is None:
            return self.default
        return self.tenants.get(tenant, self.default)

    def model_for(self, route: RouteName) -> str:
        return self.models[route]


def _as_dict(value: Any) -> dict[str, Any]:
    # A model built in code counts only the fields it set, the way a TOML table does.
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_unset=True)
    return dict(value) if isinstance(value, dict) else {}


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, BaseModel):
            value = value.model_dump(exclude_unset=True)
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_profile(path: Path | None, *, role: Role, seed: int | None = None) -> SimulatorProfile:
    """The profile for `role`: from a TOML file, or the built-in demo profiles when `path` is None.

    A file holds either one profile, or `[primary]` and `[candidate]` tables beside shared keys.
    `role` and `seed` given here win over the file's."""
    if path is None:
        return demo_profiles(0 if seed is None else seed)[role]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ProfileError(f"cannot read profile {path}: {error.strerror or error}") from error
    except tomllib.TOMLDecodeError as error:
        raise ProfileError(f"profile {path} is not valid TOML: {error}") from error
    shared = {key: value for key, value in data.items() if key not in ("primary", "candidate")}
    data = _merge(shared, data.get(role, {}))
    data["role"] = role
    if seed is not None:
        data["seed"] = seed
    try:
        return SimulatorProfile.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "profile"
        raise ProfileError(f"profile {path}: {where}: {first['msg']}") from error


def demo_profiles(seed: int = 0) -> dict[Role, SimulatorProfile]:
    """The demo's two servers. The candidate has five planted tenants; any other tenant gets the
    candidate's default: the same answers in slightly different words, faster than the primary.

    The planted regressions are clear on purpose, so that a minute of traffic decides them: a candidate
    that loses a quarter of the words of a recording, one whose every answer takes about 2.6 s (where
    the plan allows a p95 of 2 s for SOAP notes, 2.5 s for recordings, 150 ms for retrieval), and one
    that changes doses and flips negations in most answers."""
    primary = SimulatorProfile(
        role="primary",
        seed=seed,
        default=TenantProfile(
            latency=Latency(
                median_ms=650,
                p95_ms=1800,
                chunk_ms=35,
                per_mb_ms=110,
                route_multipliers={"embed": 0.2, "rerank": 0.3},
            ),
            error_rate=0.003,
        ),
    )
    candidate = SimulatorProfile(
        role="candidate",
        seed=seed,
        default=TenantProfile(
            latency=Latency(
                median_ms=300,
                p95_ms=700,
                chunk_ms=8,
                per_mb_ms=60,
                # retrieval on a GPU: ~12 ms to embed a few passages, ~15 ms to rerank five
                route_multipliers={"embed": 0.04, "rerank": 0.05},
            ),
            # An equivalent candidate does not fail: with the demo's 80 pairs per route one error
            # already leaves its error rate too close to the 5 % limit to call.
            error_rate=0.0,
            drift={
                "chat": Drift(substitution=0.03),
                # Equivalent means equivalent: no lost words, whose loss can change a clinical meaning.
                "audio": Drift(substitution=0.02),
                "embed": Drift(substitution=0.02),
            },
        ),
        tenants={
            # equivalent: only the light paraphrase every tenant gets
            "klinik-sejahtera": TenantProfile(),
            # transcription regression: the candidate loses a quarter of the words in recordings
            "klinik-harmoni": TenantProfile(drift={"audio": Drift(drop_words=0.25)}),
            # latency regression: an overloaded server, every answer about 2.6 s before its first token
            "klinik-bayu": TenantProfile(
                latency=Latency(
                    median_ms=2600,
                    p95_ms=4000,
                    chunk_ms=20,
                    route_multipliers={"embed": 0.08, "rerank": 0.1},  # retrieval ~0.2 s, limit 150 ms
                )
            ),
            # clinical-fact regression: changed doses and flipped negations
            "klinik-mutiara": TenantProfile(
                drift={"chat": Drift(numbers=0.2, negation=0.25), "audio": Drift(numbers=0.1, negation=0.15)}
            ),
            # behaves normally; what sets it apart is little traffic, which the demo's load
            # generator decides, not the simulator
            "klinik-kecil": TenantProfile(),
        },
    )
    return {"primary": primary, "candidate": candidate}
