"""The verdict is a pure function: each rule, alone, makes a point INVALID and says why; shares
and percentiles are judged with their own sampling error."""

from __future__ import annotations

import numpy as np
import pytest

from bench.load import judge
from bench.load.log import Measurement, RequestLog
from bench.load.sampling import min_samples_to_bound, quantile_interval, upper_rank
from bench.load.scenarios.offline import OfflineScenarioConfig
from bench.load.scenarios.server import ServerScenarioConfig
from bench.load.stats import summarize


def stats(**kw) -> dict:
    base = {
        "window_s": 10.0,
        "completed": 1000,
        "requests": 1000,
        "achieved_qps": 100.0,
        "errors": 0,
        "window_requests": [333, 333, 334],
        "window_confidence": 0.9,
        "window_qps_spread_beyond_noise": 0.0,
        "window_p50_spread_beyond_noise": 0.0,
        "window_p99_spread_beyond_noise": 0.05,
        "late_send_fraction": 0.0,
        "late_sends": 0,
        "blocked_send_fraction": 0.0,
        "latency_p99_ms": 20.0,
        "latency_p50_ms": 5.0,
        "latency_p50_more_needed": 0,
        "latency_p99_more_needed": 0,
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
        ({"window_qps_spread_beyond_noise": 0.25}, "throughput differs by 25%", "run longer"),
        ({"window_p99_spread_beyond_noise": 0.4}, "p99 differs by 40% beyond", "run longer"),
        ({"window_p50_spread_beyond_noise": 0.3}, "p50 differs by 30% beyond", "run longer"),
        (
            {"window_p50_spread_beyond_noise": np.nan, "window_p99_spread_beyond_noise": np.nan},
            "too short to judge stability",
            "scenario.duration_s >= ",
        ),
        (
            {"late_send_fraction": 0.05, "late_sends": 50},
            "generator fell behind: 5.0% of requests (50 of 1000)",
            "lower the rate",
        ),
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


def test_an_slo_met_on_too_few_requests_is_too_short_to_judge():
    """min_requests=100 would let a p99 rest on one request: the SLO check says so instead."""
    slo = ServerScenarioConfig(slo_ms=30.0)
    verdict = judge(stats(requests=180, completed=180, latency_p99_more_needed=279), slo)
    assert not verdict.valid
    check = next(c for c in verdict.checks if c.name == "slo")
    assert check.outcome == "too short to judge" and check.passed is None
    assert "needs 279 more" in check.reason
    assert "scenario.duration_s >= " in verdict.recommendation
    row = verdict.as_row()
    assert row["check_slo"] is None and "slo" in row["too_short_to_judge"]
    # A miss is a miss, however few the requests.
    missed = judge(stats(latency_p99_ms=45.0, latency_p99_more_needed=279), slo)
    assert "SLO missed" in missed.reasons[0]


def test_an_accuracy_floor_on_refused_outputs_says_why():
    from bench.backends.accuracy import compare

    row = compare(np.ones(4, dtype=np.float32), np.ones((4, 8), dtype=np.float32), "embedding")
    verdict = judge(stats(**row), SERVER, accuracy_floor=0.99)
    assert [c.name for c in verdict.failed] == ["accuracy"]
    assert verdict.reasons[0].startswith(
        "accuracy not measured: refused: served outputs of shape (4,)"
    )


def test_offline_ignores_latency_spread_and_send_lateness():
    # An offline burst's latency grows as the queue empties, and all sends are at once.
    verdict = judge(
        stats(window_p99_spread_beyond_noise=3.0, late_send_fraction=0.9), OfflineScenarioConfig()
    )
    assert verdict.valid


def test_p99_windows_of_one_steady_system_agree_within_their_noise():
    """Three windows drawn from one distribution: raw p99s differ, their intervals meet."""
    from bench.load.stats import WINDOW_CONFIDENCE, _spread, _spread_beyond_noise

    rng = np.random.default_rng(3)
    windows = [np.sort(rng.lognormal(2.0, 0.5, 500)) for _ in range(3)]
    p99 = [float(np.percentile(w, 99)) for w in windows]
    bounds = [quantile_interval(w, 0.99, WINDOW_CONFIDENCE) for w in windows]
    assert all(lo <= p <= hi for p, (lo, hi) in zip(p99, bounds, strict=True))
    assert _spread_beyond_noise(p99, bounds, 1.0) < 0.10
    # A real change, latency doubled in the last window, is not explained by noise.
    shifted = [*windows[:2], windows[2] * 2.0]
    p99 = [float(np.percentile(w, 99)) for w in shifted]
    bounds = [quantile_interval(w, 0.99, WINDOW_CONFIDENCE) for w in shifted]
    assert _spread(p99) > 0.5
    assert _spread_beyond_noise(p99, bounds, 1.0) > 0.10


def test_sixty_requests_cannot_bound_a_p99_from_above():
    """The largest of 60 samples is below the true p99 45% of the time: no upper bound."""
    window = np.sort(np.random.default_rng(0).lognormal(0.0, 0.5, 60))
    lo, hi = quantile_interval(window, 0.99, 0.90)
    assert np.isfinite(lo) and hi == np.inf
    assert upper_rank(60, 0.99, 0.95) is None
    # LoadGen's early-stopping minimum for p99 at 99% confidence with no sample over it.
    assert min_samples_to_bound(0.99, 0.99) == 459
    assert upper_rank(459, 0.99, 0.99) == 459 and upper_rank(458, 0.99, 0.99) is None


def synthetic_point(
    latency_s: np.ndarray, late: int, late_by_s: float = 0.004, late_send_s: float = 1e-3
) -> dict:
    """`summarize` over a Poisson point of 10 s (no warm-up) whose requests take `latency_s`
    each, `late` of them (spread over the point) sent `late_by_s` late; a send over
    `late_send_s` late counts as late."""
    # Given their count, a Poisson process's arrivals are uniform over the window.
    offsets = np.sort(np.random.default_rng(11).uniform(0.0, 9.9, len(latency_s)))
    log = RequestLog()
    late_at = set(np.linspace(0, len(offsets) - 1, late).astype(int)) if late else set()
    for i, (at, took) in enumerate(zip(offsets, latency_s, strict=False)):
        dispatched = at + (late_by_s if i in late_at else 0.0)
        index = log.new(at, dispatched)
        log.started[index] = log.sent[index] = dispatched
        log.done[index] = at + took
        log.ok[index] = True
    return summarize(Measurement(log, 0.0, 10.0), 3, late_send_s, 1)


def test_a_steady_180_request_point_with_three_late_sends_passes():
    """The quiet host's 10 s point at 20 qps: 3 late sends of 180 and p99 over windows of 60
    (nearly each window's maximum) are within their sampling error."""
    rng = np.random.default_rng(5)
    latency = rng.lognormal(np.log(0.003), 0.5, 180)
    point = synthetic_point(latency, late=3)
    assert point["requests"] == 180 and point["late_sends"] == 3
    assert point["late_send_fraction"] > 0.01  # the raw 1% rule would fail it
    # p99 cannot be compared on 60-request windows; p50 and throughput can.
    assert np.isnan(point["window_p99_spread_beyond_noise"])
    assert point["latency_p99_more_needed"] == 459 - 180
    verdict = judge(point, ServerScenarioConfig())
    assert verdict.valid, verdict.reasons
    stability = next(c for c in verdict.checks if c.name == "stability")
    assert "Not compared for this point" in stability.rule and "p99" in stability.rule


def test_a_real_shift_in_a_180_request_point_still_fails():
    rng = np.random.default_rng(5)
    latency = rng.lognormal(np.log(0.003), 0.5, 180)
    # The last third of the point ran 1.5x slower: a change, not noise.
    latency[120:] *= 1.5
    verdict = judge(synthetic_point(latency, late=3), ServerScenarioConfig())
    assert not verdict.valid
    assert "p50 differs by" in verdict.reasons[0]


def test_a_sub_millisecond_move_the_harness_cannot_resolve_is_not_drift():
    """The driver-capacity point: 10,000 requests a window at a 0.15 ms p50 whose last window
    runs 20 us (13%) slower. The order-statistic intervals are tight, so the move is real, but
    far below the 1 ms within which the harness times a send: judged against that, stable."""
    rng = np.random.default_rng(7)
    latency = rng.lognormal(np.log(0.00015), 0.2, 30_000)
    latency[20_000:] += 0.00002
    verdict = judge(synthetic_point(latency, late=0), ServerScenarioConfig())
    assert verdict.valid, verdict.reasons
    stability = next(c for c in verdict.checks if c.name == "stability")
    assert "timing tolerance, 1 ms (scenario.late_send_ms" in stability.rule
    # Judged against a 10 us tolerance instead, the same move is beyond the noise: unstable.
    fine = synthetic_point(latency, late=0, late_send_s=1e-5)
    verdict = judge(fine, ServerScenarioConfig(late_send_ms=0.01))
    assert [c.name for c in verdict.failed] == ["stability"]
    assert "p50 differs by" in verdict.reasons[0]


def test_a_millisecond_move_is_drift_however_fast_the_model():
    """A p50 going from 2 ms to 3 ms in the last window is well above the tolerance: unstable."""
    rng = np.random.default_rng(7)
    latency = rng.lognormal(np.log(0.002), 0.2, 30_000)
    latency[20_000:] += 0.001
    verdict = judge(synthetic_point(latency, late=0), ServerScenarioConfig())
    assert [c.name for c in verdict.failed] == ["stability"]
    assert "p50 differs by" in verdict.reasons[0]


def test_a_steady_queue_at_80_percent_is_stable():
    """A queue's latencies come in runs: at 80% load (M/D/1, 2 ms service, 400 requests/s) a
    window's p50 moves far outside intervals that take its requests as independent (42% of
    such steady points were flagged in a simulation). Counted as the independent requests
    they are worth, the windows agree."""
    from bench.load.sampling import independent_share

    count = 4000
    arrivals = np.sort(np.random.default_rng(11).uniform(0.0, 9.9, count))  # synthetic_point's
    waits = np.zeros(count)
    for i in range(1, count):  # Lindley's recursion
        waits[i] = max(0.0, waits[i - 1] + 0.002 - (arrivals[i] - arrivals[i - 1]))
    latency = waits + 0.002
    assert independent_share(latency <= np.median(latency)) < 0.5
    verdict = judge(synthetic_point(latency, late=0), ServerScenarioConfig())
    assert verdict.valid, verdict.reasons


def test_a_late_share_significantly_over_the_limit_fails():
    rng = np.random.default_rng(5)
    latency = rng.lognormal(np.log(0.003), 0.5, 180)
    verdict = judge(synthetic_point(latency, late=12), ServerScenarioConfig())
    assert [c.name for c in verdict.failed] == ["generator"]
    assert "12 of 180" in verdict.reasons[0]


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


@pytest.mark.parametrize("real_time", [True, False])
def test_a_host_late_point_says_when_the_sender_lacked_real_time_priority(real_time):
    shares = {"late_generator_fraction": 0.0, "late_process_fraction": 0.0}
    point = stats(
        late_send_fraction=0.3, late_host_fraction=0.3, late_sut_fraction=0.0,
        sender_real_time=real_time, **shares,
    )  # fmt: skip
    verdict = judge(point, SERVER)
    assert ("CAP_SYS_NICE" in verdict.recommendation) is not real_time


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
