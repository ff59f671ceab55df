"""Settings: TOML file, environment overrides, and bad configuration refused with one sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowgate.settings import ConfigError, RouteKind, hash_api_key, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "shadowgate.toml"
    path.write_text(text)
    return path


def test_toml_file_then_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(
        tmp_path,
        """
primary_url = "http://litellm.internal:4000"
candidate_timeout_s = 8

[[tenants]]
id = "klinik-sejahtera"
name = "Klinik Sejahtera"
sample_rate = 0.25
sensitive = true

[[routes]]
prefix = "/v1/chat/completions"
kind = "chat"
sample_rate = 0.5

[limits]
capture_queue = 500
""",
    )
    monkeypatch.setenv("SHADOWGATE_CANDIDATE_URL", "http://hi-end.internal:8000")
    monkeypatch.setenv("SHADOWGATE_CANDIDATE_TIMEOUT_S", "9.5")
    monkeypatch.setenv("SHADOWGATE_CANDIDATE_API_KEY", "sk-candidate-secret")
    s = load_settings(config)
    assert str(s.primary_url) == "http://litellm.internal:4000/"
    assert str(s.candidate_url) == "http://hi-end.internal:8000/"
    assert s.candidate_timeout_s == 9.5  # the environment wins over the file
    assert s.tenants[0].sensitive
    assert s.tenants[0].sample_rate == 0.25
    assert s.routes[0].kind is RouteKind.CHAT
    assert s.limits.capture_queue == 500
    assert s.limits.inline_body_bytes == 64 * 1024  # untouched defaults stay
    assert "sk-candidate-secret" not in repr(s)
    assert s.candidate_api_key is not None
    assert s.candidate_api_key.get_secret_value() == "sk-candidate-secret"


def test_defaults_without_any_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.redis_url is None  # the embedded Redis will be started
    assert s.candidate_timeout_s == 10.0  # the migration plan's fallback trigger
    assert s.database_url.startswith("sqlite:///")
    assert {r.kind for r in s.routes} >= {RouteKind.AUDIO, RouteKind.CHAT, RouteKind.EMBED}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('primary_ulr = "http://x"', "primary_ulr"),
        ('primary_url = "not a url"', "primary_url"),
        ('redis_url = "http://127.0.0.1:6379"', "redis_url"),
        ('[[tenants]]\nid = "a"\n[[tenants]]\nid = "a"', "unique"),
        ('[[tenants]]\nid = "a"\nsample_rate = 2', "tenants.0.sample_rate"),
        ('[[routes]]\nprefix = "/x"\nkind = "video"', "routes.0.kind"),
        ('[[tenants]]\nid = "a"\napi_key_sha256 = ["abc"]', "64 hex"),
    ],
)
def test_bad_configuration_is_refused_in_one_sentence(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text))
    message = str(err.value)
    assert needle in message
    assert "\n" not in message


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_api_key_hash_maps_to_one_tenant(tmp_path: Path) -> None:
    digest = hash_api_key("sk-x")
    tenant = '[[tenants]]\nid = "{}"\napi_key_sha256 = ["{}"]\n'
    text = tenant.format("a", digest) + tenant.format("b", digest)
    with pytest.raises(ConfigError, match="both a and b"):
        load_settings(write(tmp_path, text))
