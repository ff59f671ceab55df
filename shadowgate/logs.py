"""Logging set-up for every command: one line per event, never a request or response body."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # aiohttp's access log would print every path; the tap turns it off and so do we here.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # The HTTP client under the openai SDK logs every request URL at INFO.
    for name in ("httpx", "httpx2", "httpcore", "openai"):
        logging.getLogger(name).setLevel(logging.WARNING)
