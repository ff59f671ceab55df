"""The simulator profile: latency sampling, tenant overrides, TOML loading and the demo set."""

import statistics
from pathlib import Path
from random import Random

import pytest
from pydantic import ValidationError

from simulator.profile import (
    Drift,
    Latency,
    ProfileError,
    SimulatorProfile,
    TenantProfile,
    demo_profiles,
    load_profile,
)


def test_latency_matches_its_median_and_p95() -> None:
    latency = Latency(median_ms=200, p95_ms=600)
    rng = Random(0)
    samples = sorted(latency.sample_ms(rng, "chat") for _ in range(20_000))
    assert statistics.median(samples) == pytest.approx(200, rel=0.05)
    assert samples[int(0.95 * len(samples))] == pytest.approx(600, rel=0.08)


def test_latency_slowdown_route_multiplier_and_size_add_up() -> None:
    latency = Latency(median_ms=100, p95_ms=100, slowdown=3, route_multipliers={"embed": 0.5}, per_mb_ms=10)
    assert latency.sample_ms(Random(0), "chat") == pytest.approx(300)
    assert latency.sample_ms(Random(0), "embed") == pytest.approx(150)
    assert latency.sample_ms(Random(0), "audio", size_bytes=20_000_000) == pytest.approx(900)
    assert latency.chunk_delay_ms() == pytest.approx(90)


def test_latency_rejects_p95_below_median() -> None:
    with pytest.raises(ValidationError):
        Latency(median_ms=500, p95_ms=100)


def test_tenant_override_changes_only_what_it_sets() -> None:
    profile = SimulatorProfile(
        default=TenantProfile(
            latency=Latency(median_ms=50, p95_ms=80),
            drift={"chat": Drift(substitution=0.1), "audio": Drift(substitution=0.2)},
        ),
        tenants={"klinik-a": TenantProfile(drift={"audio": Drift(drop_words=0.3)})},
    )
    tenant = profile.for_tenant("klinik-a")
    assert tenant.latency.median_ms == 50
    assert tenant.drift_for("chat").substitution == 0.1
    assert tenant.drift_for("audio") == Drift(substitution=0.2, drop_words=0.3)
    assert profile.for_tenant("unknown") is profile.default
    assert profile.for_tenant(None) is profile.default


def test_role_sets_the_model_names() -> None:
    assert SimulatorProfile(role="primary").model_for("chat") == "gpt-4o-mini"
    candidate = SimulatorProfile(role="candidate", models={"embed": "bge-m3-custom"})
    assert candidate.model_for("chat") == "llama-3.1-70b"
    assert candidate.model_for("embed") == "bge-m3-custom"


def test_load_profile_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text(
        """
seed = 5
[default.latency]
median_ms = 10
p95_ms = 20

[candidate.tenants.klinik-bayu.latency]
slowdown = 3.0

[candidate.tenants.klinik-mutiara.drift.chat]
numbers = 0.2
""",
        encoding="utf-8",
    )
    candidate = load_profile(path, role="candidate")
    assert candidate.role == "candidate"
    assert candidate.seed == 5
    bayu = candidate.for_tenant("klinik-bayu")
    assert (bayu.latency.median_ms, bayu.latency.slowdown) == (10, 3.0)
    assert candidate.for_tenant("klinik-mutiara").drift_for("chat").numbers == 0.2
    primary = load_profile(path, role="primary", seed=9)
    assert primary.seed == 9
    assert primary.tenants == {}
    assert primary.default.latency.median_ms == 10


def test_load_profile_errors_are_one_sentence(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[default]\nerror_rate = 2\n", encoding="utf-8")
    with pytest.raises(ProfileError, match=r"default\.error_rate"):
        load_profile(bad, role="primary")
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "missing.toml", role="primary")
    broken = tmp_path / "broken.toml"
    broken.write_text("seed = = 1", encoding="utf-8")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(broken, role="primary")


def test_no_path_gives_the_demo_profiles() -> None:
    assert load_profile(None, role="candidate", seed=3) == demo_profiles(3)["candidate"]


def test_demo_plants_five_tenants_on_the_candidate() -> None:
    demo = demo_profiles()
    candidate = demo["candidate"]
    assert set(candidate.tenants) == {
        "klinik-sejahtera",
        "klinik-harmoni",
        "klinik-bayu",
        "klinik-mutiara",
        "klinik-kecil",
    }
    assert candidate.for_tenant("klinik-sejahtera") == candidate.default
    assert candidate.for_tenant("klinik-harmoni").drift_for("audio").drop_words == 0.25
    assert candidate.for_tenant("klinik-harmoni").drift_for("chat") == candidate.default.drift_for("chat")
    bayu = candidate.for_tenant("klinik-bayu").latency
    # slower than the plan's p95 limits (2 s SOAP, 2.5 s audio) on its median alone
    assert bayu.median_ms > 2500
    # retrieval too: its median alone is above the plan's 150 ms
    assert bayu.median_ms * bayu.route_multipliers["embed"] > 150
    assert bayu.median_ms * bayu.route_multipliers["rerank"] > 150
    # the rest of the latency model (the cost of a large upload) is the default's
    assert bayu.per_mb_ms == candidate.default.latency.per_mb_ms
    mutiara = candidate.for_tenant("klinik-mutiara").drift_for("chat")
    assert mutiara.numbers > 0
    assert mutiara.negation > 0
    assert demo["primary"].default.drift == {}
