"""`shadowgate dashboard`: Streamlit serving dashboard/app.py, with this command's settings passed through."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from dashboard.auth import hash_password
from shadowgate.settings import CONFIG_ENV, ConfigError

APP = Path(__file__).resolve().parent / "app.py"


def streamlit_argv(host: str, port: int) -> list[str]:
    """The `streamlit run` command line: headless, no usage statistics (no network), no file watcher."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
        "--theme.base",
        "light",
    ]


def child_env(environ: Mapping[str, str], config: Path | None) -> dict[str, str]:
    """The environment the app runs with: this one, with --config (if given) as $SHADOWGATE_CONFIG, so the
    app builds exactly the settings this command was started with."""
    env = dict(environ)
    if config is not None:
        env[CONFIG_ENV] = str(config.resolve())
    return env


def run(*, config: Path | None, host: str, port: int, environ: Mapping[str, str]) -> NoReturn:
    """Blocking entry of `shadowgate dashboard`: becomes the Streamlit server (exec), so signals reach it."""
    if not 0 < port < 65536:
        raise ConfigError(f"--port {port} is not a port number")
    argv = streamlit_argv(host, port)
    print(f"shadowgate: the dashboard is at http://{host}:{port}/", file=sys.stderr, flush=True)
    os.execve(sys.executable, argv, child_env(environ, config))  # noqa: S606 (our own interpreter, fixed argv)


def hash_password_main() -> int:
    """`shadowgate dashboard --hash-password`: read a password (no echo on a terminal), print its hash."""
    password = getpass.getpass("Password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    if not password:
        raise ConfigError("an empty password cannot be hashed")
    print(hash_password(password))
    return 0
