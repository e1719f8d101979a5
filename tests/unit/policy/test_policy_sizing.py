"""Sizing from the per-minute rate histogram, human rounding, forecasts, tier settings."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigie.errors import ConfigError
from vigie.policy import sizing
from vigie.settings import load_settings
from vigie.settings.policy import PolicyConfig, parse_tier_limits
from vigie.state import layout as L
from vigie.state import primitives as K


def histogram(counts: list[int]) -> np.ndarray:
    """The rate histogram the kernels would build from these per-minute counts."""
    h = np.zeros(L.RATE_BUCKETS, dtype=np.int32)
    for c in counts:
        h[sizing.rate_bucket(c)] += 1
    return h


# ---- naive references ----
def naive_quantile_upper(counts: list[int], q: float) -> float:
    """The q-quantile of the counts, reported as the upper bound of its bucket."""
    ordered = sorted(counts)
    k = max(math.ceil(q * len(ordered)) - 1, 0)
    return sizing.bucket_upper(sizing.rate_bucket(ordered[k]))


def test_rate_bucket_matches_the_kernel() -> None:
    for c in [*range(1, 300), 1000, 4096, 65_535, 1 << 21, (1 << 21) + 1, 10**8]:
        assert sizing.rate_bucket(c) == int(K.rate_bucket(c)), c


@given(st.lists(st.integers(1, 100_000), min_size=1, max_size=300), st.sampled_from([0.5, 0.99]))
@settings(max_examples=200, deadline=None)
def test_percentile_matches_a_naive_reference(counts: list[int], q: float) -> None:
    h = histogram(counts)
    got = sizing.percentile(h, q, cap=0)
    assert got == pytest.approx(naive_quantile_upper(counts, q))
    # an upper bound of the true quantile, at most one bucket (19 %) above it
    true = sorted(counts)[max(math.ceil(q * len(counts)) - 1, 0)]
    assert true <= got + 1e-9
    assert got <= max(true * 2**0.25, 1.0) + 1e-9


def test_percentile_is_capped_by_the_busiest_minute() -> None:
    h = histogram([100] * 50)
    assert sizing.percentile(h, 0.99, cap=100) == 100
    assert sizing.percentile(h, 0.99, cap=0) > 100
    assert sizing.percentile(np.zeros(L.RATE_BUCKETS, dtype=np.int32), 0.99, cap=0) == 0


def test_profile_converts_slots_to_minutes() -> None:
    h = histogram([10] * 40)
    p = sizing.profile(h, 10, slot_seconds=30.0)  # 30 s slots: 20 per minute
    assert p.minutes == 40
    assert p.max == 20
    assert p.p99 == 20


@given(st.lists(st.integers(1, 5000), min_size=1, max_size=200), st.integers(1, 6000))
@settings(max_examples=200, deadline=None)
def test_refused_share_matches_a_naive_reference(counts: list[int], limit: int) -> None:
    h = histogram(counts)
    mids = [
        1.0 if sizing.rate_bucket(c) == 0 else 2.0 ** ((sizing.rate_bucket(c) - 0.5) / 4)
        for c in counts
    ]
    expected = sum(max(m - limit, 0.0) for m in mids) / sum(mids)
    assert sizing.refused_share(h, limit) == pytest.approx(expected)


def test_refused_share_bounds() -> None:
    h = histogram([50] * 10)
    assert sizing.refused_share(h, 10_000) == 0.0
    assert 0.9 < sizing.refused_share(h, 1) < 1.0
    assert sizing.refused_share(np.zeros(L.RATE_BUCKETS, dtype=np.int32), 5) == 0.0


@pytest.mark.parametrize(
    ("x", "nice"),
    [(0.2, 1), (1, 1), (1.1, 2), (7, 8), (10, 10), (11, 12), (13, 15), (17, 20), (21, 25),
     (26, 30), (31, 40), (41, 50), (51, 60), (61, 80), (81, 100), (1234, 1500), (1500, 1500),
     (2001, 2500), (4999, 5000), (9000, 10_000), (123_456, 150_000)],
)  # fmt: skip
def test_nice_ceil_rounds_up_to_human_numbers(x: float, nice: int) -> None:
    assert sizing.nice_ceil(x) == nice


@given(st.floats(1.0, 1e9))
def test_nice_ceil_never_rounds_down(x: float) -> None:
    n = sizing.nice_ceil(x)
    assert n >= x - 1e-6
    assert n <= x * 4 / 3 + 2  # the widest steps: 1.5 -> 2, 3 -> 4, 6 -> 8; 1.x -> 2 below 10


def test_days_to_limit() -> None:
    # doubling every week from 1000 to 4000: two weeks
    assert sizing.days_to_limit(1000, 4000, 2.0) == pytest.approx(14.0)
    assert sizing.days_to_limit(5000, 4000, 2.0) == 0.0
    assert sizing.days_to_limit(1000, 4000, 1.0) is None
    assert sizing.days_to_limit(0, 4000, 2.0) is None
    assert sizing.days_to_limit(1000, 4000, float("inf")) is None


def test_default_tiers_are_wso2s() -> None:
    tiers = parse_tier_limits("Bronze=1000/min,Silver=2000/min,Gold=5000/min,Unlimited=unlimited")
    assert {k: t.per_minute for k, t in tiers.items()} == {
        "bronze": 1000,
        "silver": 2000,
        "gold": 5000,
        "unlimited": None,
    }
    assert PolicyConfig().tier("GOLD") == tiers["gold"]
    assert PolicyConfig().tier("Platinum") is None


def test_tier_units() -> None:
    tiers = parse_tier_limits("Hourly=6000/hour, Fast=10/sec, Daily=1440/day")
    assert tiers["hourly"].per_minute == 100
    assert tiers["fast"].per_minute == 600
    assert tiers["daily"].per_minute == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Gold", "tier 'Gold': expected NAME=COUNT/UNIT"),
        ("Gold=5000/week", "tier 'Gold': unit 'week' is not one of sec, min, hour, day"),
        ("Gold=0/min", "tier 'Gold': the count must be positive"),
        ("Gold=1/min,gold=2/min", "tier 'gold' is given twice"),
    ],
)
def test_bad_tier_limits_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_tier_limits(text)
    with pytest.raises(ConfigError, match="^VIGIE_TIER_LIMITS: tier_limits: " + message[:8]):
        load_settings(env={"VIGIE_TIER_LIMITS": text})


def test_policy_settings_are_validated() -> None:
    with pytest.raises(
        ConfigError, match=r"^VIGIE_AUTO_APPROVE: auto_approve: 'growing' cannot be auto-approved"
    ):
        load_settings(env={"VIGIE_AUTO_APPROVE": "retry_storm,growing"})
    with pytest.raises(ConfigError, match="must be a share between 0 and 1"):
        load_settings(env={"VIGIE_AUTO_APPROVE_MAX_SHARE": "1.5"})
    s = load_settings(env={"VIGIE_AUTO_APPROVE": "retry_storm, dormant", "VIGIE_ALLOW_LIST":
                           "app-1, api:Payments"})  # fmt: skip
    c = PolicyConfig.from_settings(s)
    assert c.auto_approve == ("retry_storm", "dormant")
    assert c.allow_listed("app-1", "", "Orders")
    assert c.allow_listed("x", "y", "Payments")
    assert not c.allow_listed("x", "y", "Orders")
