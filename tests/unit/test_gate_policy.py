"""Policy files: the packaged defaults, merging overrides, versions and one-sentence errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.policy import Policy, PolicyError, RoutePolicy, load_policy


def test_packaged_defaults_follow_the_migration_plan() -> None:
    p = load_policy()
    assert p.for_("any", "audio").candidate_p95_ms_max == 2500
    assert p.for_("any", "chat").candidate_p95_ms_max == 2000
    assert p.for_("any", "embed").candidate_p95_ms_max == 150
    assert p.for_("any", "rerank").candidate_p95_ms_max == 150
    d = p.for_("any", "other")
    assert (d.error_rate_max, d.candidate_timeout_ms, d.alpha, d.window_s) == (0.05, 10_000, 0.05, 86_400)
    assert d.critical == ["fact_mismatch_rate"]


def test_tenant_overrides_merge_over_route_defaults(tmp_path: Path) -> None:
    f = tmp_path / "p.toml"
    f.write_text(
        "[routes.audio]\ncandidate_p95_ms_max = 2500\nwer_max = 0.2\n"
        "[tenants.doczam]\nfact_mismatch_rate_max = 0.01\n"
        "[tenants.doczam.routes.audio]\nwer_max = 0.1\n"
    )
    p = load_policy(f)
    strict, normal = p.for_("doczam", "audio"), p.for_("other_clinic", "audio")
    assert (strict.wer_max, strict.fact_mismatch_rate_max, strict.candidate_p95_ms_max) == (0.1, 0.01, 2500)
    assert (normal.wer_max, normal.fact_mismatch_rate_max) == (0.2, 0.005)
    assert p.for_("doczam", "chat").fact_mismatch_rate_max == 0.01
    assert strict.version != normal.version
    assert len(p.version) == 12
    assert load_policy(f).version == p.version  # canonical: same file, same version


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[defaults\n", "not valid TOML"),
        ("[defaults]\nalpha = 2\n", "defaults.alpha"),
        ("[defaults]\nwindow = 'a day'\n", "window must be"),
        ("[routes.chat]\nwer_maxx = 0.1\n", "routes.chat: wer_maxx"),
        ("[tenants.t.routes.audio]\ncritical = ['speed']\n", "unknown metric(s) speed"),
        ("[tenants.t]\nroutes = 3\n", "must be a table"),
        # contradictory limits
        ("[defaults]\nskip = ['fact_mismatch_rate']\n", "both critical and skipped"),
        ("[routes.audio]\nrequired = ['wer']\nskip = ['wer']\n", "wer is both required and skipped"),
        ("[tenants.t]\ncandidate_timeout_ms = 1500\n", "above candidate_timeout_ms"),
        ("[defaults]\nno_go_alpha = 0.5\n", "no_go_alpha"),
        ("[defaults]\nintervals = 'bayes'\n", "intervals"),
    ],
)
def test_bad_files_fail_with_one_sentence(tmp_path: Path, text: str, says: str) -> None:
    f = tmp_path / "p.toml"
    f.write_text(text)
    with pytest.raises(PolicyError, match="policy file") as e:
        load_policy(f)
    assert says in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file() -> None:
    with pytest.raises(PolicyError, match="Cannot read"):
        load_policy("/nonexistent/policy.toml")


def test_policy_built_directly() -> None:
    p = Policy(defaults=RoutePolicy(min_pairs=50), routes={"embed": {"candidate_p95_ms_max": 100}})
    assert p.for_("t", "embed").min_pairs == 50
    assert p.for_("t", "embed").candidate_p95_ms_max == 100
