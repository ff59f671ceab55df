"""Tenant attribution, route matching and sampling: pure, no I/O."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from mirror.attribution import Attributor, sampled_for
from shadowgate.settings import Route, RouteKind, Settings, Tenant, hash_api_key


def headers(**kv: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in kv.items()}))


SETTINGS = Settings(
    tenants=(
        Tenant(id="klinik-a", api_key_sha256=(hash_api_key("sk-a"),)),
        Tenant(id="klinik-b", sample_rate=0.0),
        Tenant(id="klinik-c", mirror=False),
    ),
    routes=(
        Route(prefix="/v1/audio", kind=RouteKind.AUDIO, sample_rate=0.5),
        Route(prefix="/v1/audio/transcriptions", kind=RouteKind.AUDIO),
        Route(prefix="/v1/chat/completions", kind=RouteKind.CHAT),
    ),
)


def test_tenant_by_header_then_by_api_key_then_default() -> None:
    a = Attributor(SETTINGS)
    assert a.tenant_for(headers(X_Tenant_ID="klinik-b", Authorization="Bearer sk-a")) == "klinik-b"
    assert a.tenant_for(headers(Authorization="Bearer sk-a")) == "klinik-a"
    assert a.tenant_for(headers(Api_Key="sk-a")) == "klinik-a"
    assert a.tenant_for(headers(Authorization="Bearer sk-unknown")) == "unknown"
    assert a.tenant_for(headers(X_Tenant_ID="klinik-new")) == "klinik-new"


def test_longest_route_prefix_wins_and_unknown_paths_are_not_sampled() -> None:
    a = Attributor(SETTINGS)
    assert a.route_for("/v1/audio/transcriptions").sample_rate == 1.0
    assert a.route_for("/v1/audio/translations").sample_rate == 0.5
    other = a.attribute("/v1/models", headers(X_Tenant_ID="klinik-a"))
    assert other.route.kind is RouteKind.OTHER
    assert not other.sampled


def test_sampling_respects_tenant_switches() -> None:
    a = Attributor(SETTINGS)
    path = "/v1/chat/completions"
    assert a.attribute(path, headers(X_Tenant_ID="klinik-a")).sampled
    assert not a.attribute(path, headers(X_Tenant_ID="klinik-b")).sampled
    assert not a.attribute(path, headers(X_Tenant_ID="klinik-c")).sampled


def test_request_id_from_client_header_else_fresh() -> None:
    a = Attributor(SETTINGS)
    assert a.request_id(headers(X_Request_ID="r-1")) == "r-1"
    assert a.request_id(headers(Idempotency_Key="k-9")) == "k-9"
    assert a.request_id(headers()) != a.request_id(headers())


def test_sampling_is_deterministic_and_close_to_the_rate() -> None:
    ids = [f"req-{i}" for i in range(20_000)]
    first = [sampled_for(i, 0.1) for i in ids]
    assert first == [sampled_for(i, 0.1) for i in ids]
    assert 0.09 < sum(first) / len(ids) < 0.11
    assert all(sampled_for(i, 1.0) for i in ids[:10])
    assert not any(sampled_for(i, 0.0) for i in ids[:10])
