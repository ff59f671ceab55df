"""Property-based: however the captures' timestamps jump (clock skew between taps, a bogus entry), the
dispatcher's pacer never waits longer than its bound, and never a negative time."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mirror.pacing import Pacer

stamps = st.floats(min_value=0, max_value=4e9, allow_nan=False)  # unix seconds, up to the year 2096
advances = st.floats(min_value=0, max_value=30, allow_nan=False)  # seconds between two reads


@given(events=st.lists(st.tuples(stamps, advances), min_size=1, max_size=40))
def test_the_dispatch_pacer_never_waits_past_its_bound(events: list[tuple[float, float]]) -> None:
    now = [1000.0]
    pacer = Pacer(reanchor_after_s=1.0, max_delay_s=10.0, clock=lambda: now[0])
    for ts, advance in events:
        delay = pacer.delay(ts)
        assert 0.0 <= delay <= 10.0
        now[0] += delay + advance


@given(gaps=st.lists(st.floats(min_value=0, max_value=9.5, allow_nan=False), min_size=1, max_size=20))
def test_a_backlog_keeps_its_spacing_within_the_bound(gaps: list[float]) -> None:
    now = [1000.0]
    pacer = Pacer(reanchor_after_s=1.0, max_delay_s=10.0, clock=lambda: now[0])
    ts = 1_790_000_000.0
    pacer.delay(ts)
    for gap in gaps:
        ts += gap
        delay = pacer.delay(ts)
        assert abs(delay - gap) < 1e-6  # the original spacing, exactly
        now[0] += delay
