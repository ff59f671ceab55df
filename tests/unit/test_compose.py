"""docker-compose.yml and .env.example against the settings model and the CLI (no Docker engine needed)."""

from __future__ import annotations

import base64
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from shadowgate.cli import _parser
from shadowgate.settings import CONFIG_ENV, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SHADOWGATE_SERVICES = ("tap", "dispatch", "worker", "dashboard", "primary-sim", "candidate-sim")
# Compose's own variables (interpolated into docker-compose.yml), not shadowgate settings.
COMPOSE_VARIABLES = {"POSTGRES_PASSWORD"}
_INTERPOLATION = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::?[-?][^}]*)?\}")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _env_example(*, commented: bool = False) -> dict[str, str]:
    """The names and values of .env.example (with `commented`, also the commented-out assignments)."""
    out = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if commented and re.match(r"^#\s*[A-Z_][A-Z0-9_]*=", text):
            text = text.lstrip("#").strip()
        if not text or text.startswith("#"):
            continue
        name, _, value = text.partition("=")
        out[name.strip()] = value.strip()
    return out


def _field_exists(name: str) -> bool:
    """Whether SHADOWGATE_<NAME> (nested with __) names a field of the settings model."""
    model: type[BaseModel] = Settings
    parts = name.removeprefix("SHADOWGATE_").lower().split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if i < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return False
            model = annotation
    return True


def _interpolate(value: str, env: dict[str, str]) -> str:
    return _INTERPOLATION.sub(lambda m: env.get(m.group(1), ""), value)


def test_every_name_in_env_example_is_a_setting() -> None:
    names = _env_example(commented=True)
    assert names, ".env.example names no settings"
    for name in names:
        if name in COMPOSE_VARIABLES or name == CONFIG_ENV:
            continue
        assert name.startswith("SHADOWGATE_"), name
        assert _field_exists(name), f"{name} in .env.example is not a setting of shadowgate/settings.py"
    # the commented placeholder for the encryption key is there, and names a real setting
    assert any(n.startswith("SHADOWGATE_ENCRYPTION__") for n in names)


def test_compose_variables_in_env_example_are_used_by_compose() -> None:
    used = set(_INTERPOLATION.findall(COMPOSE.read_text(encoding="utf-8")))
    others = {n for n in _env_example() if not n.startswith("SHADOWGATE_")}
    assert others <= used | {CONFIG_ENV}, f"{others - used} in .env.example are used by nothing"
    assert used <= set(_env_example()) | {CONFIG_ENV}, f"{used - set(_env_example())} are not in .env.example"


def test_env_example_builds_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("SHADOWGATE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no ./shadowgate.toml
    for name, value in _env_example().items():
        if name.startswith("SHADOWGATE_"):
            monkeypatch.setenv(name, value)
    settings = Settings()
    assert str(settings.primary_url).startswith("http://primary-sim:4000")
    assert settings.worker.batch == 64


@pytest.mark.parametrize("service", SHADOWGATE_SERVICES)
def test_each_shadowgate_service_gets_valid_settings(
    service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The service's environment (env_file .env from .env.example, then `environment:`) builds Settings,
    with encryption required and a key as an operator would add it."""
    spec = _compose()["services"][service]
    assert spec["env_file"] == ".env"
    example = _env_example()
    env = {k: v for k, v in example.items() if k.startswith("SHADOWGATE_")}
    key = base64.b64encode(os.urandom(32)).decode()
    env["SHADOWGATE_ENCRYPTION__KEYS"] = f'{{"k1": "{key}"}}'
    for name, value in spec.get("environment", {}).items():
        assert name.startswith("SHADOWGATE_"), f"{service}: {name} is not a shadowgate setting"
        assert _field_exists(name), f"{service}: {name} is not a setting of shadowgate/settings.py"
        env[name] = _interpolate(str(value), example)
    for name in list(os.environ):
        if name.startswith("SHADOWGATE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.encryption.required
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.database_url.startswith("postgresql+psycopg://shadowgate:")


def test_services_and_profiles() -> None:
    services = _compose()["services"]
    assert {"redis", "postgres", "tap", "dispatch", "worker", "dashboard"} <= set(services)
    for name in ("redis", "postgres", "tap", "dispatch", "worker", "dashboard"):
        assert "profiles" not in services[name], f"{name} must run without a profile"
    for name in ("primary-sim", "candidate-sim"):
        assert services[name]["profiles"] == ["demo"]
        assert services[name]["command"][0] == "simulate"


def test_every_service_has_a_healthcheck() -> None:
    services = _compose()["services"]
    tests = {name: spec["healthcheck"]["test"] for name, spec in services.items()}
    assert tests["redis"] == ["CMD", "redis-cli", "ping"]
    assert tests["postgres"][:2] == ["CMD", "pg_isready"]
    assert tests["dispatch"] == ["CMD", "shadowgate", "dispatch", "--check"]
    assert tests["worker"] == ["CMD", "shadowgate", "worker", "--check"]
    assert "/_shadowgate/healthz" in " ".join(tests["tap"])


def test_workers_can_be_scaled() -> None:
    """`docker compose up --scale worker=4` needs no fixed name and no published host port."""
    services = _compose()["services"]
    for name in ("worker", "dispatch"):
        assert "container_name" not in services[name]
        assert not services[name].get("ports")


@pytest.mark.parametrize("service", SHADOWGATE_SERVICES)
def test_commands_are_real_cli_commands(service: str) -> None:
    """Each service's command and healthcheck parse with shadowgate's own argument parser."""
    spec = _compose()["services"][service]
    parser = _parser()
    subcommands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    if spec["command"][0] not in subcommands:
        pytest.skip(f"`shadowgate {spec['command'][0]}` is not in this checkout yet")
    parser.parse_args(spec["command"])
    check = spec["healthcheck"]["test"]
    if check[1] == "shadowgate":
        parser.parse_args(check[2:])


def _compose_binary() -> list[str] | None:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_validates(tmp_path: Path) -> None:
    """The real `docker compose config` (or Debian's docker-compose v1), where one is installed."""
    binary = _compose_binary()
    if binary is None:
        pytest.skip(
            "neither `docker compose` nor `docker-compose` is installed (apt-get install docker-compose)"
        )
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SHADOWGATE_", "POSTGRES_", "COMPOSE_"))}
    for args in (["config", "-q"], ["--profile", "demo", "config", "--services"]):
        done = subprocess.run(
            [*binary, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, f"{shlex.join([*binary, *args])}: {done.stderr[-2000:]}"
    assert set(done.stdout.split()) == {
        "redis",
        "postgres",
        "tap",
        "dispatch",
        "worker",
        "dashboard",
        "primary-sim",
        "candidate-sim",
    }
