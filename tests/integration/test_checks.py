"""`shadowgate worker --check` and `dispatch --check` say why they fail, without an address."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import TEST_REDIS_URL


def _check(command: str, redis_url: str, prefix: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SHADOWGATE_")},
        "SHADOWGATE_REDIS_URL": redis_url,
        "SHADOWGATE_STREAM_PREFIX": prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "shadowgate.cli", command, "--check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(("command", "what"), [("worker", "worker"), ("dispatch", "dispatcher")])
def test_a_failed_check_says_why(command: str, what: str, stream_prefix: str) -> None:
    # Redis answers, nothing runs under this prefix
    nothing = _check(command, TEST_REDIS_URL, stream_prefix)
    assert nothing.returncode == 1
    assert f"no {what} is alive" in nothing.stderr
    # nothing listens where Redis should be; the address (which may carry a password) is not printed
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = _check(command, f"redis://:s3cret-pw@127.0.0.1:{port}/0", stream_prefix)
    assert down.returncode == 1
    assert "Redis is not answering" in down.stderr
    assert "s3cret-pw" not in down.stderr + down.stdout
    assert str(port) not in down.stderr
