"""Hypothesis profiles: `ci` (default) keeps the suite short; `fuzz` is for bench/fuzz_tap.py-sized runs."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]

settings.register_profile(
    "ci", max_examples=60, deadline=None, database=None, derandomize=False, suppress_health_check=_QUIET
)
settings.register_profile(
    "fuzz", max_examples=2000, deadline=None, database=None, suppress_health_check=_QUIET
)
settings.load_profile(os.environ.get("SHADOWGATE_HYPOTHESIS_PROFILE", "ci"))
