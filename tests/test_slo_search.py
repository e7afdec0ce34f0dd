"""The SLO search is a pure function over the measured history: tested against known curves."""

from __future__ import annotations

import math

import pytest

from bench.load.slo_search import Trial, bracket, highest_passing_rate, next_rate, passed


def mm1_p99_ms(rate: float, service_ms: float = 10.0) -> float:
    """p99 sojourn time of an M/M/1 queue: -ln(0.01) / (mu - lambda)."""
    mu = 1000.0 / service_ms
    return math.inf if rate >= mu else 1000.0 * math.log(100.0) / (mu - rate)


def search(slo_ms: float, saturation: float, tolerance=0.05, max_trials=12) -> list[Trial]:
    trials: list[Trial] = []
    while (rate := next_rate(trials, slo_ms, saturation, tolerance, max_trials)) is not None:
        p99 = mm1_p99_ms(rate)
        trials.append(Trial(rate, p99, p99 <= slo_ms))
    return trials


@pytest.mark.parametrize("slo_ms", [60.0, 100.0, 300.0])
def test_the_search_converges_on_the_true_capacity(slo_ms):
    # M/M/1 with 10 ms service: p99 <= slo  <=>  rate <= 100 - 1000 ln(100) / slo.
    truth = 100.0 - 1000.0 * math.log(100.0) / slo_ms
    trials = search(slo_ms, saturation=100.0)
    found = highest_passing_rate(trials)
    assert found is not None and found <= truth
    assert found >= truth * 0.95
    assert len(trials) <= 12


def test_an_slo_no_rate_can_meet_ends_the_search_without_a_capacity():
    trials = search(slo_ms=5.0, saturation=100.0)  # below the 10 ms service time itself
    assert highest_passing_rate(trials) is None
    assert trials[-1].rate < 0.2


def test_the_bracket_ignores_failures_below_the_best_pass():
    trials = [Trial(10, 5, True), Trial(5, 50, False), Trial(40, 500, False), Trial(20, 9, True)]
    lo, hi = bracket(trials)
    assert (lo.rate, hi.rate) == (20, 40)
    # Interpolation lands at 20.04, hugging the pass: the next trial is kept 10% inside.
    assert next_rate(trials, 10.0, 50.0, 0.05, 10) == pytest.approx(22.0)


def test_a_pass_needs_the_slo_no_errors_and_the_load_offered():
    row = {
        "status": "measured",
        "latency_p99_ms": 80.0,
        "errors": 0,
        "late_send_fraction": 0.0,
        "blocked_send_fraction": 0.0,
    }
    assert passed(row, 100.0, "p99", 0.01)
    assert not passed({**row, "latency_p99_ms": 120.0}, 100.0, "p99", 0.01)
    assert not passed({**row, "errors": 2}, 100.0, "p99", 0.01)
    assert not passed({**row, "blocked_send_fraction": 0.05}, 100.0, "p99", 0.01)
    # The generator's own lateness is inside the percentile already: a pass stays a pass.
    assert passed({**row, "late_send_fraction": 0.05}, 100.0, "p99", 0.01)
    assert not passed({**row, "status": "failed"}, 100.0, "p99", 0.01)
