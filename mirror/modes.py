"""Per tenant x route modes (mirror or cutover) and the kill switch: kept in Redis, followed by every tap.

Layout (prefix = `stream_prefix`):

- `<prefix>:modes` — a hash; field `<tenant>|<route>` holds a `ModeEntry` as JSON, field `kill` the
  `KillSwitch`. A tenant x route without a field is in `mirror` (the default).
- `<prefix>:modes:version` — a counter raised by every change, so a replica polls one small GET and
  reads the hash only when something changed.

Every change goes through one Lua script (set the field, raise the version) that can also be
conditional on the field's current value: two tap replicas that both decide to roll the same tenant x
route back cannot both do it (only the one whose compare-and-set wins writes the audit entry).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Literal

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mirror.consumer import sleep_or

log = logging.getLogger("shadowgate.modes")

Mode = Literal["mirror", "cutover"]
MIRROR: Mode = "mirror"
CUTOVER: Mode = "cutover"
KILL_FIELD = "kill"
# The actor of the audit entries written when a tap rolls a tenant x route back by itself.
AUTO_ROLLBACK_ACTOR = "shadowgate-auto-rollback"


class ModeEntry(msgspec.Struct, frozen=True, omit_defaults=True):
    """The mode of one tenant x route, with who set it, when, why and on which verdict."""

    tenant: str
    route: str
    mode: Mode
    since: float  # unix seconds
    by: str
    reason: str
    verdict: str | None = None
    verdict_id: int | None = None
    forced: bool = False
    # Share of the candidate's answers also sent to the primary (cutover only).
    shadow_rate: float | None = None

    @property
    def epoch(self) -> str:
        """Names this cutover period: its outcome counters are its own, so a new cutover starts afresh."""
        return str(int(self.since * 1000))


class KillSwitch(msgspec.Struct, frozen=True):
    on: bool
    since: float
    by: str
    reason: str


@dataclass(frozen=True)
class Snapshot:
    """What one replica knows: every entry, the cutover ones apart (the hot path's one dict lookup)."""

    version: int
    entries: dict[tuple[str, str], ModeEntry] = field(default_factory=dict)
    kill: KillSwitch | None = None
    # The stored JSON of each entry, for compare-and-set.
    raw: dict[tuple[str, str], bytes] = field(default_factory=dict)
    cutover: dict[tuple[str, str], ModeEntry] = field(init=False)
    killed: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cutover", {k: e for k, e in self.entries.items() if e.mode == CUTOVER})
        object.__setattr__(self, "killed", self.kill is not None and self.kill.on)

    def mode_of(self, tenant: str, route: str) -> Mode:
        entry = self.entries.get((tenant, route))
        return MIRROR if entry is None else entry.mode


EMPTY = Snapshot(0)

_entry_decoder = msgspec.json.Decoder(ModeEntry)
_kill_decoder = msgspec.json.Decoder(KillSwitch)
_encoder = msgspec.json.Encoder()

# KEYS: hash, version. ARGV: field, new value ('' deletes), compare? ('1'/'0'), expected ('' = absent).
# Returns {applied (1/0), the value before ('' = absent)}.
_SET = """
local cur = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if ARGV[3] == '1' and cur ~= ARGV[4] then return {0, cur} end
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], ARGV[1])
else redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('INCR', KEYS[2])
return {1, cur}
"""


def field_for(tenant: str, route: str) -> str:
    return f"{tenant}|{route}"


def encode(value: ModeEntry | KillSwitch) -> bytes:
    return _encoder.encode(value)


def parse(version: int, fields: dict[bytes, bytes]) -> Snapshot:
    """A snapshot from the hash's fields; a field that does not decode is skipped (and logged)."""
    entries: dict[tuple[str, str], ModeEntry] = {}
    raw: dict[tuple[str, str], bytes] = {}
    kill: KillSwitch | None = None
    for name, value in fields.items():
        key = name.decode(errors="replace")
        try:
            if key == KILL_FIELD:
                kill = _kill_decoder.decode(value)
                continue
            entry = _entry_decoder.decode(value)
        except msgspec.DecodeError:
            log.warning("mode field %r does not decode; ignored", key[:100])
            continue
        entries[(entry.tenant, entry.route)] = entry
        raw[(entry.tenant, entry.route)] = value
    return Snapshot(version, entries, kill, raw)


class ModeStore:
    """Reads and changes the modes in Redis (`redis.asyncio`)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self.key = f"{prefix}:modes"
        self.version_key = f"{prefix}:modes:version"
        self._set = redis.register_script(_SET)

    async def version(self) -> int:
        value = await self._redis.get(self.version_key)
        return int(value or 0)

    async def snapshot(self) -> Snapshot:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self.version_key)
            pipe.hgetall(self.key)
            version, fields = await pipe.execute()
        return parse(int(version or 0), fields)

    async def killed(self) -> bool:
        value = await self._redis.hget(self.key, KILL_FIELD)
        return value is not None and _kill_decoder.decode(value).on

    async def put(
        self, entry: ModeEntry, *, expect: bytes | None = None, compare: bool = False
    ) -> tuple[bool, bytes]:
        """Store `entry`; with `compare`, only if the field still holds `expect` (None: absent).

        Returns whether it was stored, and the value the field held before ('' when absent)."""
        return await self._put(field_for(entry.tenant, entry.route), encode(entry), expect, compare)

    async def put_kill(
        self, kill: KillSwitch, *, expect: bytes | None = None, compare: bool = False
    ) -> tuple[bool, bytes]:
        return await self._put(KILL_FIELD, encode(kill), expect, compare)

    async def _put(self, name: str, value: bytes, expect: bytes | None, compare: bool) -> tuple[bool, bytes]:
        applied, before = await self._set(
            keys=[self.key, self.version_key],
            args=[name, value, "1" if compare else "0", expect or b""],
        )
        return bool(applied), bytes(before)

    async def restore(self, name: str, value: bytes, *, expect: bytes) -> bool:
        """Put back what a field held (b'' deletes it), only if it still holds `expect`."""
        applied, _ = await self._set(keys=[self.key, self.version_key], args=[name, value, "1", expect])
        return bool(applied)


def decode_entry(value: bytes) -> ModeEntry | None:
    if not value:
        return None
    try:
        return _entry_decoder.decode(value)
    except msgspec.DecodeError:
        return None


def decode_kill(value: bytes) -> KillSwitch | None:
    if not value:
        return None
    try:
        return _kill_decoder.decode(value)
    except msgspec.DecodeError:
        return None


class ModeWatcher:
    """A replica's copy of the modes, refreshed in the background; requests read `snapshot` only.

    When Redis cannot be reached the last known modes stay in force (a tenant in cutover stays in
    cutover, with its per-request fallback to the primary): an outage of the control plane changes
    nothing for users. The failures are counted and logged once per outage."""

    def __init__(self, store: ModeStore, refresh_s: float) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self.snapshot: Snapshot = EMPTY
        self.errors = 0
        self.changes = 0
        self.refreshed_at: float | None = None  # monotonic time of the last successful look
        self._failing = False

    async def refresh(self) -> bool:
        """Look once; True when the modes changed. Raises what Redis raises."""
        version = await self.store.version()
        self.refreshed_at = time.monotonic()
        if version == self.snapshot.version:
            return False
        self.snapshot = await self.store.snapshot()
        self.changes += 1
        return True

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                changed = await self.refresh()
            except (RedisError, OSError) as exc:
                self.errors += 1
                if not self._failing:
                    log.warning(
                        "modes: Redis unavailable (%s); keeping the last known modes", type(exc).__name__
                    )
                self._failing = True
            else:
                if self._failing:
                    log.info("modes: Redis reachable again")
                self._failing = False
                if changed:
                    s = self.snapshot
                    log.info(
                        "modes version %d: %d tenant x route in cutover, kill switch %s",
                        s.version,
                        len(s.cutover),
                        "ON" if s.killed else "off",
                    )
            await sleep_or(stop, self.refresh_s)

    def age_s(self) -> float | None:
        return None if self.refreshed_at is None else time.monotonic() - self.refreshed_at
