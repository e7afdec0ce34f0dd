"""The queueing simulation against queueing theory where theory is exact."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.capacity.queueing import capacity_qps, predicted_percentile_ms, simulate


def test_mm1_sojourn_times_match_theory():
    # M/M/1: the sojourn time is exponential with rate mu - lambda.
    rng = np.random.default_rng(1)
    service = rng.exponential(0.010, 200_000)  # mu = 100/s
    latencies = simulate(service, rate_qps=50.0, workers=1, requests=60_000, seed=2)
    assert latencies.mean() == pytest.approx(1 / 50.0, rel=0.06)
    assert np.percentile(latencies, 99) == pytest.approx(math.log(100) / 50.0, rel=0.1)


def test_md1_waits_match_the_pollaczek_khinchine_formula():
    # M/D/1: mean wait = rho * s / (2 (1 - rho)).
    s, rate = 0.010, 70.0
    rho = rate * s
    latencies = simulate(np.array([s]), rate, workers=1, requests=60_000, seed=3)
    assert latencies.mean() - s == pytest.approx(rho * s / (2 * (1 - rho)), rel=0.08)


def test_more_workers_carry_more_load_at_the_same_slo():
    service = np.full(100, 0.010)
    one = capacity_qps(service, 1, slo_ms=50.0, percentile="p99")
    two = capacity_qps(service, 2, slo_ms=50.0, percentile="p99")
    assert 0 < one < 100 and one < two < 200
    # Pooling two workers behind one queue does better than two separate queues.
    assert two > 2 * one


def test_overload_and_impossible_slos():
    service = np.full(10, 0.010)
    assert predicted_percentile_ms(service, 150.0, 1, "p99") == math.inf
    assert capacity_qps(service, 4, slo_ms=5.0, percentile="p99") == 0.0
