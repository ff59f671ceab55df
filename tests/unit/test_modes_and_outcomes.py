"""Pure parts of cutover: the modes snapshot a replica keeps, and the rollback rule over a window."""

from __future__ import annotations

import pytest

from mirror.modes import CUTOVER, KILL_FIELD, MIRROR, KillSwitch, ModeEntry, encode, field_for, parse
from mirror.outcomes import Counts, Limits, Tally, breach, fields_of, window

LIMITS = Limits(error_rate_max=0.05, p95_ms_max=2000, min_requests=20)


def entry(tenant: str, route: str, mode: str, since: float = 1_700_000_000.25) -> ModeEntry:
    return ModeEntry(tenant=tenant, route=route, mode=mode, since=since, by="lead", reason="why")  # type: ignore[arg-type]


def test_a_snapshot_keeps_only_cutover_entries_for_the_hot_path() -> None:
    fields = {
        field_for("a", "chat").encode(): encode(entry("a", "chat", CUTOVER)),
        field_for("a", "audio").encode(): encode(entry("a", "audio", MIRROR)),
        field_for("b", "chat").encode(): b"{not json",
        KILL_FIELD.encode(): encode(KillSwitch(on=False, since=1.0, by="x", reason="y")),
    }
    snap = parse(7, fields)
    assert snap.version == 7
    assert set(snap.cutover) == {("a", "chat")}
    assert set(snap.entries) == {("a", "chat"), ("a", "audio")}
    assert snap.mode_of("a", "audio") == MIRROR
    assert snap.mode_of("b", "chat") == MIRROR  # undecodable: ignored, so mirror
    assert snap.mode_of("zzz", "embed") == MIRROR
    assert not snap.killed
    assert snap.raw[("a", "chat")] == fields[b"a|chat"]


def test_the_kill_switch_and_the_epoch_of_a_cutover() -> None:
    snap = parse(1, {b"kill": encode(KillSwitch(on=True, since=2.0, by="x", reason="drill"))})
    assert snap.killed
    assert entry("a", "chat", CUTOVER, since=12.3456).epoch == "12345"


@pytest.mark.parametrize(
    ("counts", "rule"),
    [
        (Counts(n=19, errors=19), None),  # too few answers to judge
        (Counts(n=20, errors=1), None),  # 5 %: not above the limit
        (Counts(n=20, errors=2), "error_rate"),
        (Counts(n=100, errors=0, slow=5), None),  # p95 exactly at the limit's edge
        (Counts(n=100, errors=0, slow=6), "latency"),
        (Counts(n=100, errors=6, slow=50), "error_rate"),  # errors are named first
    ],
)
def test_the_rollback_rule(counts: Counts, rule: str | None) -> None:
    found = breach(counts, LIMITS, 60)
    assert (found and found.rule) == rule
    if found is not None:
        assert "60 s" in found.reason


def test_a_tally_hands_over_per_second_counts_as_hash_fields() -> None:
    tally = Tally()
    key = ("a", "chat", "1")
    tally.record(key, 100, ok=True, slow=False)
    tally.record(key, 100, ok=False, slow=True)
    tally.record(key, 101, ok=True, slow=False)
    assert tally
    taken = tally.take()
    assert not tally
    assert fields_of(taken[key]) == {"100:n": 2, "100:e": 1, "100:s": 1, "101:n": 1}


def test_the_window_sums_its_seconds_and_names_older_fields() -> None:
    fields = {
        b"40:n": b"5",
        b"40:e": b"5",
        b"41:n": b"3",
        b"41:e": b"1",
        b"100:n": b"2",
        b"100:s": b"2",
        b"junk": b"1",
    }
    total, old = window(fields, now_s=100, window_s=60)
    assert (total.n, total.errors, total.slow) == (5, 1, 2)
    assert sorted(old) == [b"40:e", b"40:n", b"junk"]
