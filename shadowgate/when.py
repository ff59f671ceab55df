"""Points in time as people type them on a command line: ISO 8601, or an age like 15m."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from shadowgate.settings import ConfigError

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_when(text: str, *, now: float | None = None) -> int:
    """A point in time as unix ms: ISO 8601 (`2026-11-27T09:00`, UTC unless it says otherwise), or
    an age such as `15m`, `2h`, `1d` meaning that long ago."""
    now = time.time() if now is None else now
    match = _RELATIVE.match(text.strip())
    if match:
        return int((now - float(match.group(1)) * _UNIT_S[match.group(2)]) * 1000)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ConfigError(f"cannot read {text!r} as a time: use ISO 8601 or an age like 15m") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_moment(text: str | None) -> datetime | None:
    """`parse_when` as an aware UTC datetime, or None for no text."""
    return None if text is None else datetime.fromtimestamp(parse_when(text) / 1000, tz=UTC)
