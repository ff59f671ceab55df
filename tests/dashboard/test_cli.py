"""`shadowgate dashboard`: the password helper, and the settings the served app is started with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dashboard.auth import verify_password
from dashboard.serve import APP, child_env, streamlit_argv


def test_hash_password_prints_a_hash_of_the_password_read_from_stdin() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHADOWGATE_")}
    done = subprocess.run(
        [sys.executable, "-m", "shadowgate.cli", "dashboard", "--hash-password"],
        input="correct horse\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    encoded = done.stdout.strip()
    assert encoded.startswith("scrypt$32768$8$1$")
    assert "correct horse" not in done.stdout
    assert verify_password("correct horse", encoded)
    assert not verify_password("correct horse\n", encoded)


def test_the_app_gets_the_config_and_the_environment_of_the_command(tmp_path: Path) -> None:
    config = tmp_path / "sg.toml"
    env = child_env({"SHADOWGATE_DB_URL": "sqlite:///x.db", "PATH": "/bin"}, config)
    assert env == {"SHADOWGATE_DB_URL": "sqlite:///x.db", "PATH": "/bin", "SHADOWGATE_CONFIG": str(config)}
    assert child_env({"SHADOWGATE_CONFIG": "/etc/sg.toml"}, None) == {"SHADOWGATE_CONFIG": "/etc/sg.toml"}
    argv = streamlit_argv("0.0.0.0", 9000)
    assert argv[1:5] == ["-m", "streamlit", "run", str(APP)]
    assert argv[argv.index("--server.port") + 1] == "9000"
    assert argv[argv.index("--browser.gatherUsageStats") + 1] == "false"
