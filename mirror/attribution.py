"""Which tenant and route a request belongs to, and whether it is sampled for capture."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from multidict import CIMultiDictProxy

from mirror.headers import on_the_wire
from shadowgate.settings import Route, RouteKind, Settings, Tenant

_OTHER = Route(prefix="/", kind=RouteKind.OTHER, sample_rate=0.0)


@dataclass(frozen=True, slots=True)
class Attribution:
    tenant: str
    route: Route
    request_id: str
    sampled: bool


class Attributor:
    """Built once from settings; `attribute` runs on the hot path and does no I/O."""

    def __init__(self, settings: Settings) -> None:
        self._header = settings.tenant_header
        self._default = settings.default_tenant
        self._tenants: dict[str, Tenant] = {t.id: t for t in settings.tenants}
        self._by_key: dict[str, str] = {digest: t.id for t in settings.tenants for digest in t.api_key_sha256}
        # Longest prefix first, so /v1/audio/transcriptions wins over /v1/audio.
        self._routes = sorted(settings.routes, key=lambda r: len(r.prefix), reverse=True)
        self._id_headers = settings.request_id_headers
        self._capture = settings.capture

    def route_for(self, path: str) -> Route:
        for route in self._routes:
            if path.startswith(route.prefix):
                return route
        return _OTHER

    def tenant_for(self, headers: CIMultiDictProxy[str]) -> str:
        named = headers.get(self._header)
        if named:  # a header is anything the client sent: only what can be forwarded names a tenant
            named = on_the_wire(named)
        if named and named in self._tenants:
            return named
        key = _api_key(headers)
        if key is not None:
            tenant = self._by_key.get(hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest())
            if tenant is not None:
                return tenant
        # An unknown name is kept as given (bounded) so it shows up in the captures, not silently merged.
        return named[:64] if named else self._default

    def request_id(self, headers: CIMultiDictProxy[str]) -> str:
        for name in self._id_headers:
            value = headers.get(name)
            if value:
                return on_the_wire(value)[:128]
        return uuid.uuid4().hex

    def attribute(self, path: str, headers: CIMultiDictProxy[str]) -> Attribution:
        route = self.route_for(path)
        tenant_id = self.tenant_for(headers)
        request_id = self.request_id(headers)
        tenant = self._tenants.get(tenant_id)
        rate = route.sample_rate
        if tenant is not None:
            rate = rate * tenant.sample_rate if tenant.mirror else 0.0
        sampled = self._capture and sampled_for(request_id, rate)
        return Attribution(tenant_id, route, request_id, sampled)


def sampled_for(request_id: str, rate: float) -> bool:
    """The same request id gets the same answer every time, so a client's retry is sampled alike."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2**64


def _api_key(headers: CIMultiDictProxy[str]) -> str | None:
    auth = headers.get("Authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token:
            return token.strip()
    return headers.get("Api-Key") or headers.get("X-Api-Key")
