"""The embedded server's pure helpers: its config file, its URL, and reading the process table."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowgate.embedded_redis import (
    EmbeddedRedisError,
    parse_proc_stat,
    parse_version,
    quote,
    redis_url,
    render_config,
)


def test_config_persists_with_an_append_only_file() -> None:
    config = render_config(
        host="127.0.0.1", port=6390, state_dir=Path("/data/redis"), persist=True, maxmemory=None
    ).splitlines()
    assert 'bind "127.0.0.1"' in config
    assert "port 6390" in config
    assert "protected-mode yes" in config
    assert "daemonize no" in config
    assert 'dir "/data/redis"' in config
    assert 'logfile "/data/redis/valkey.log"' in config
    assert 'pidfile "/data/redis/valkey.pid"' in config
    assert 'save ""' in config
    assert "appendonly yes" in config
    assert "appendfsync everysec" in config
    assert not any(line.startswith("maxmemory") for line in config)


def test_config_without_persistence_and_with_a_memory_cap() -> None:
    config = render_config(
        host="::", port=1, state_dir=Path("/d"), persist=False, maxmemory="256mb"
    ).splitlines()
    assert "appendonly no" in config
    assert 'maxmemory "256mb"' in config


def test_quote_escapes_what_valkey_conf_would_split_on() -> None:
    assert quote("/srv/my data") == '"/srv/my data"'
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    assert quote("line\nbreak") == '"line\\nbreak"'


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "redis://127.0.0.1:7000/0"),
        ("0.0.0.0", "redis://127.0.0.1:7000/0"),
        ("::", "redis://[::1]:7000/0"),
        ("::1", "redis://[::1]:7000/0"),
        ("redis.internal", "redis://redis.internal:7000/0"),
    ],
)
def test_url_dials_this_machine_for_a_wildcard_bind(host: str, url: str) -> None:
    assert redis_url(host, 7000) == url


def test_version_comes_from_the_banner() -> None:
    banner = "Valkey server v=8.1.8 sha=00000000:1 malloc=libc bits=64 build=7eb4ebc9d7e91f4e\n"
    assert parse_version(banner) == "8.1.8"
    with pytest.raises(EmbeddedRedisError, match="unrecognised version"):
        parse_version("something else")


def test_proc_stat_survives_a_command_name_with_spaces_and_parentheses() -> None:
    rest = " ".join(str(n) for n in range(5, 23))  # fields 5..22; field 22 is the start time
    stat = parse_proc_stat(f"4242 (valkey (x) y) S 17 {rest} 0 0")
    assert stat.state == "S"
    assert stat.ppid == 17
    assert stat.start_time == 22
