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


def test_slow_spells_build_queues_that_scattered_slow_requests_do_not():
    # Half the requests take 9 ms, half 1 ms: in spells of 1,000 (a host slowed for seconds) a
    # queue at 150/s builds during each slow spell (9 ms > 1/150 s); the same times in random
    # order keep the mean utilisation at 75% and the queue short.
    spells = np.concatenate([np.full(1000, 0.009), np.full(1000, 0.001)] * 5)
    scattered = np.random.default_rng(0).permutation(spells)
    in_spells = predicted_percentile_ms(spells, 150.0, 1, "p99")
    one_by_one = predicted_percentile_ms(scattered, 150.0, 1, "p99")
    assert in_spells > 3 * one_by_one
    assert capacity_qps(spells, 1, 50.0, "p99") < capacity_qps(scattered, 1, 50.0, "p99")
