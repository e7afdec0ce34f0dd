"""The verdict is a pure function: each rule, alone, makes a point INVALID and says why."""

from __future__ import annotations

import numpy as np
import pytest

from bench.load import judge
from bench.load.scenarios.offline import OfflineScenarioConfig
from bench.load.scenarios.server import ServerScenarioConfig


def stats(**kw) -> dict:
    base = {
        "window_s": 10.0,
        "completed": 1000,
        "requests": 1000,
        "achieved_qps": 100.0,
        "errors": 0,
        "window_qps_spread": 0.02,
        "window_p99_spread_beyond_noise": 0.05,
        "late_send_fraction": 0.0,
        "blocked_send_fraction": 0.0,
        "latency_p99_ms": 20.0,
        "latency_p50_ms": 5.0,
    }
    base.update(kw)
    return base


SERVER = ServerScenarioConfig()


def test_a_clean_point_is_valid():
    verdict = judge(stats(), SERVER)
    assert verdict.valid and verdict.reasons == []
    assert verdict.as_row()["invalid_reasons"] == ""


@pytest.mark.parametrize(
    "change, reason, advice",
    [
        ({"window_s": 2.0}, "too short", "scenario.duration_s >= "),
        ({"completed": 40, "achieved_qps": 4.0}, "too short", "scenario.duration_s >= 30"),
        ({"window_qps_spread": 0.25}, "throughput differs by 25%", "run longer"),
        ({"window_p99_spread_beyond_noise": 0.4}, "p99 differs by 40% beyond", "run longer"),
        ({"window_p99_spread_beyond_noise": np.nan}, "unstable", "run longer"),
        ({"late_send_fraction": 0.05}, "generator fell behind: 5.0%", "lower the rate"),
        (
            {"blocked_send_fraction": 0.2, "connections_limit": 4},
            "connections exhausted",
            "scenario.connections",
        ),
        ({"errors": 3}, "errors: 3 of 1000", "errors column"),
    ],
)
def test_each_rule_invalidates_and_explains(change, reason, advice):
    verdict = judge(stats(**change), SERVER)
    assert not verdict.valid
    assert len(verdict.reasons) == 1
    assert reason in verdict.reasons[0]
    assert advice in verdict.recommendation


def test_slo_is_judged_on_the_chosen_percentile():
    slo = ServerScenarioConfig(slo_ms=10.0, slo_percentile="p50")
    assert judge(stats(latency_p50_ms=9.0), slo).valid
    verdict = judge(stats(latency_p50_ms=12.0), slo)
    assert "SLO missed: p50 12.0 ms > 10 ms" in verdict.reasons[0]


def test_offline_ignores_latency_spread_and_send_lateness():
    # An offline burst's latency grows as the queue empties, and all sends are at once.
    verdict = judge(
        stats(window_p99_spread_beyond_noise=3.0, late_send_fraction=0.9), OfflineScenarioConfig()
    )
    assert verdict.valid


def test_p99_windows_of_one_steady_system_agree_within_their_noise():
    """Three windows drawn from one distribution: raw p99s differ, their intervals meet."""
    from bench.load.stats import _spread, _spread_beyond_noise, quantile_bounds

    rng = np.random.default_rng(3)
    windows = [np.sort(rng.lognormal(2.0, 0.5, 500)) for _ in range(3)]
    p99 = [float(np.percentile(w, 99)) for w in windows]
    bounds = [quantile_bounds(w, 0.99) for w in windows]
    assert all(lo <= p <= hi for p, (lo, hi) in zip(p99, bounds, strict=True))
    assert _spread_beyond_noise(p99, bounds) < 0.10
    # A real change, latency doubled in the last window, is not explained by noise.
    shifted = [*windows[:2], windows[2] * 2.0]
    p99 = [float(np.percentile(w, 99)) for w in shifted]
    bounds = [quantile_bounds(w, 0.99) for w in shifted]
    assert _spread(p99) > 0.5
    assert _spread_beyond_noise(p99, bounds) > 0.10


def test_unlimited_connections_are_never_blamed():
    # direct has no connections, and scenario.connections null limits none: a request started
    # late by a busy event loop is the loop's, not a connection pool's.
    verdict = judge(stats(blocked_send_fraction=0.2), SERVER)
    assert verdict.valid
    assert verdict.as_row()["check_connections"] is None


@pytest.mark.parametrize(
    "split, culprit, advice",
    [
        ({"late_host_fraction": 0.28, "late_generator_fraction": 0.02}, "host was busy", "quieter"),
        ({"late_process_fraction": 0.3}, "process was busy", "lower the rate"),
        ({"late_generator_fraction": 0.3}, "generator fell behind", "its own cores"),
    ],
)
def test_a_late_point_names_the_culprit(split, culprit, advice):
    shares = {"late_generator_fraction": 0.0, "late_host_fraction": 0.0}
    shares |= {"late_process_fraction": 0.0, "late_sut_fraction": 0.0, **split}
    verdict = judge(stats(late_send_fraction=0.3, **shares), SERVER)
    assert not verdict.valid
    (reason,) = verdict.reasons
    assert culprit in reason
    first = max(split, key=split.get)
    assert (first == "late_generator_fraction") == reason.startswith("generator fell behind")
    assert advice in verdict.recommendation


def test_sends_late_behind_a_stall_of_the_server_are_not_the_generators():
    verdict = judge(
        stats(
            late_send_fraction=0.05,
            late_sut_fraction=0.05,
            late_generator_fraction=0.0,
            late_host_fraction=0.0,
            late_process_fraction=0.0,
        ),
        SERVER,
    )
    assert verdict.valid
