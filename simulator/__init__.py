"""An OpenAI-compatible simulator of the primary and candidate servers, for demos, tests and benchmarks."""

from simulator.profile import (
    Drift,
    Latency,
    ProfileError,
    Role,
    SimulatorProfile,
    TenantProfile,
    demo_profiles,
    load_profile,
)
from simulator.server import build_app, run

__all__ = [
    "Drift",
    "Latency",
    "ProfileError",
    "Role",
    "SimulatorProfile",
    "TenantProfile",
    "build_app",
    "demo_profiles",
    "load_profile",
    "run",
]
