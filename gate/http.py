"""The gate over HTTP, for the dashboard and the gateway: verdicts behind a bearer token."""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from gate.policy import Policy, load_policy
from gate.run import evaluate
from shadowgate.settings import ConfigError, Settings
from store.db import open_store
from store.verdicts import latest

ENGINE = web.AppKey("engine", Engine)
POLICY = web.AppKey("policy", Policy)
TOKEN = web.AppKey("token", SecretStr)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == "/healthz":
        return await handler(request)
    expected = request.app[TOKEN].get_secret_value().encode()
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        return web.json_response({"error": "a valid admin token is required"}, status=401)
    return await handler(request)


async def _latest(request: web.Request) -> web.Response:
    rows = await asyncio.to_thread(
        latest, request.app[ENGINE], tenant=request.query.get("tenant"), route=request.query.get("route")
    )
    return web.json_response({"verdicts": [dataclasses.asdict(r) | {"at": r.at.isoformat()} for r in rows]})


async def _evaluate(request: web.Request) -> web.Response:
    result = await asyncio.to_thread(
        evaluate,
        request.app[ENGINE],
        request.app[POLICY],
        tenant=request.query.get("tenant"),
        route=request.query.get("route"),
    )
    return web.json_response(
        {"policy_version": result.policy_version, "exit_code": result.exit_code, "verdicts": result.verdicts}
    )


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def build_app(engine: Engine, policy: Policy, token: SecretStr) -> web.Application:
    app = web.Application(middlewares=[require_token])
    app[ENGINE] = engine
    app[POLICY] = policy
    app[TOKEN] = token
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/verdicts", _latest)
    app.router.add_post("/verdicts/evaluate", _evaluate)
    return app


def run(settings: Settings, *, host: str, port: int, policy_path: Path | None) -> int:
    """Blocking entry of `shadowgate admin`."""
    if settings.admin_token is None or len(settings.admin_token.get_secret_value()) < 16:
        raise ConfigError("the admin API needs SHADOWGATE_ADMIN_TOKEN set to at least 16 characters")
    with open_store(settings.database_url) as engine:
        web.run_app(
            build_app(engine, load_policy(policy_path), settings.admin_token),
            host=host,
            port=port,
            access_log=None,
            print=lambda _msg: print(f"shadowgate admin API on http://{host}:{port} (token required)"),
        )
    return 0
