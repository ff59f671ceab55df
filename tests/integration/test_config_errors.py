"""Bad configuration is refused at start: exit code 2 and exactly one clear sentence on stderr, no
traceback — unknown keys (file and environment), bad URLs, bad TOML, missing required secrets."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shadowgate.cli import main

GOOD_KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No SHADOWGATE_* settings from the outside, and a folder of our own (no ./shadowgate.toml)."""
    for name in list(os.environ):
        if name.startswith("SHADOWGATE_") and not name.startswith("SHADOWGATE_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the console script's main in-process; it must exit 2 with one sentence on stderr."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("shadowgate: ")
    assert "Traceback" not in err
    return lines[0]


FILE_CASES = [
    ("bogus = 1\n", "unknown setting 'bogus'"),
    ("[limits]\ncapture_queu = 5\n", "unknown setting 'limits.capture_queu'"),
    ("[encryption]\nrequird = true\n", "unknown setting 'encryption.requird'"),
    ('[[tenants]]\nid = "k1"\ncaptur = false\n', "unknown setting 'tenants.0.captur'"),
    ('primary_url = "litellm:4000"\n', "primary_url: URL scheme should be 'http' or 'https'"),
    ('candidate_url = "ftp://hi-end:8000"\n', "candidate_url: URL scheme should be 'http' or 'https'"),
    (
        'redis_url = "http://redis:6379"\n',
        "redis_url: redis_url must start with redis://, rediss:// or unix://",
    ),
    ('db_url = "mysql://db/shadowgate"\n', "db_url: db_url must be a sqlite:// or postgresql:// URL"),
    ("[encryption]\nrequired = true\n", "encryption is required but no key is set"),
    ('[encryption.keys]\nk1 = "c2hvcnQ="\n', "encryption key 'k1' must be the base64 of 32 random bytes"),
    (
        f'[encryption]\nactive_key_id = "k3"\n[encryption.keys]\nk1 = "{GOOD_KEY}"\n',
        "active_key_id 'k3' names none of the configured keys",
    ),
    ('redact = ["ic", "passport"]\n', "redact.1: Input should be 'ic', 'phone' or 'email'"),
    ("retention_days = 0\n", "retention_days: Input should be greater than 0"),
    ('primary_url = "http://x\n', "is not valid TOML"),
]


@pytest.mark.parametrize(("toml", "sentence"), FILE_CASES)
def test_bad_config_files_are_refused_in_one_sentence(
    clean_env: Path, capsys: pytest.CaptureFixture[str], toml: str, sentence: str
) -> None:
    config = clean_env / "shadowgate.toml"
    config.write_text(toml)
    line = refused(capsys, ["--config", str(config), "gate"])
    assert sentence in line
    assert "c2hvcnQ=" not in line  # a key is never repeated back


ENV_CASES = [
    (
        {"SHADOWGATE_ENCRYPTION_REQUIRED": "true"},
        "unknown setting in the environment: SHADOWGATE_ENCRYPTION_REQUIRED",
    ),
    ({"SHADOWGATE_PRIMARYURL": "http://x"}, "unknown setting in the environment: SHADOWGATE_PRIMARYURL"),
    ({"SHADOWGATE_ENCRYPTION__REQUIRED": "true"}, "encryption is required but no key is set"),
    (
        {"SHADOWGATE_ENCRYPTION__REQUIRED": "true", "SHADOWGATE_ENCRYPTION__KEYS": ""},
        "encryption is required but no key is set",
    ),
    ({"SHADOWGATE_ENCRYPTION__KEYS": '{"k1": "not-a-key"}'}, "encryption key 'k1' must be the base64"),
    ({"SHADOWGATE_CANDIDATE_URL": "hi-end"}, "candidate_url: Input should be a valid URL"),
    (
        {"SHADOWGATE_CONFIG": "/nonexistent/shadowgate.toml"},
        "config file /nonexistent/shadowgate.toml does not exist",
    ),
]


@pytest.mark.parametrize(("env", "sentence"), ENV_CASES)
def test_bad_environment_is_refused_in_one_sentence(
    clean_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    sentence: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert sentence in refused(capsys, ["gate"])


def test_admin_without_a_token_is_refused(
    clean_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "the admin API needs SHADOWGATE_ADMIN_TOKEN" in refused(capsys, ["admin"])
    monkeypatch.setenv("SHADOWGATE_ADMIN_TOKEN", "short")
    assert "at least 16 characters" in refused(capsys, ["admin"])


def test_required_encryption_with_a_key_and_the_capture_alias_are_accepted(
    clean_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from shadowgate.settings import load_settings

    config = clean_env / "shadowgate.toml"
    config.write_text(
        f'[encryption]\nrequired = true\n[encryption.keys]\nk2026a = "{GOOD_KEY}"\n'
        '[[tenants]]\nid = "klinik-a"\ncapture = false\n[[tenants]]\nid = "klinik-b"\nmirror = false\n'
        '[[tenants]]\nid = "klinik-c"\n'
    )
    settings = load_settings(config)
    assert settings.encryption.active == "k2026a"
    assert [t.mirror for t in settings.tenants] == [False, False, True]
    assert main(["keygen"]) == 0
    assert len(base64.b64decode(capsys.readouterr().out.strip())) == 32


def test_the_console_script_prints_one_sentence_and_no_traceback(clean_env: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWGATE_")}
    for extra, sentence in (
        ({"SHADOWGATE_ENCRYPTION__REQUIRED": "true"}, "encryption is required but no key is set"),
        ({"SHADOWGATE_PRIMARY_URL": "not a url"}, "primary_url: Input should be a valid URL"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "shadowgate.cli", "tap"],
            env={**env, **extra},
            cwd=clean_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert done.stdout == ""
        assert done.stderr.count("\n") == 1
        assert sentence in done.stderr
        assert "Traceback" not in done.stderr
