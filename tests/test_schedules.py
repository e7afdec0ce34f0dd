"""Sparse arrival patterns (intermittent, bursty): pure seeded schedules, their load points,
the driver sending them on time, and a verdict that does not judge their windows' stability."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.config import validate
from bench.load import LoadPoint, judge
from bench.load.scenarios import shape_of
from bench.load.scenarios.bursty import BurstyScenarioConfig, bursty_offsets
from bench.load.scenarios.intermittent import IntermittentScenarioConfig, intermittent_offsets
from bench.load.scenarios.server import ServerScenarioConfig
from bench.validation import ConfigError
from tests.conftest import compose
from tests.synthetic import SleepPredictor, drive
from tests.test_verdict import stats


def test_intermittent_is_seeded_and_keeps_its_gaps_within_the_jitter():
    a = intermittent_offsets(2.0, 0.25, 100.0, seed=3)
    assert np.array_equal(a, intermittent_offsets(2.0, 0.25, 100.0, seed=3))
    assert not np.array_equal(a, intermittent_offsets(2.0, 0.25, 100.0, seed=4))
    assert a[0] == 0.0 and a[-1] < 100.0
    gaps = np.diff(a)
    assert gaps.min() >= 1.5 and gaps.max() <= 2.5
    assert gaps.mean() == pytest.approx(2.0, rel=0.05)
    # The schedule is not cut short: the next gap would have crossed the end.
    assert a[-1] + 2.5 >= 100.0
    assert np.array_equal(intermittent_offsets(1.0, 0.0, 3.5, seed=0), [0.0, 1.0, 2.0, 3.0])


def test_bursty_sends_bursts_separated_by_the_idle_time():
    a = bursty_offsets(5, 100.0, 2.0, 20.0, seed=1)
    assert np.array_equal(a, bursty_offsets(5, 100.0, 2.0, 20.0, seed=1))
    assert not np.array_equal(a, bursty_offsets(5, 100.0, 2.0, 20.0, seed=2))
    assert a[0] == 0.0 and a[-1] < 20.0 and np.all(np.diff(a) >= 0)
    gaps = np.diff(a)
    between = gaps[4::5]  # from each burst's last request to the next one's first
    assert np.allclose(between, 2.0)
    within = np.delete(gaps, np.arange(4, len(gaps), 5))
    assert within.max() < 0.2 and within.mean() == pytest.approx(0.01, rel=0.5)
    with pytest.raises(ValueError, match="idle_s"):
        bursty_offsets(1, 10.0, 0.0, 1.0, seed=0)


def test_sparse_scenarios_expand_to_one_point_each_with_their_pattern():
    (inter,) = IntermittentScenarioConfig(gap_s=3.0, jitter=0.1).points()
    assert (inter.scenario, inter.gap_s, inter.jitter) == ("intermittent", 3.0, 0.1)
    assert inter.label == "intermittent every 3 s"
    bursty = BurstyScenarioConfig(burst_size=4, burst_qps=80.0, idle_s=5.0)
    (burst,) = bursty.points()
    assert (burst.burst_size, burst.burst_qps, burst.idle_s) == (4, 80.0, 5.0)
    measured = [{"point": json.dumps(burst.as_dict())}]
    assert bursty.next_point(measured) is None
    offsets = shape_of(burst).offsets
    assert np.array_equal(
        offsets, bursty_offsets(4, 80.0, 5.0, burst.duration_s, burst.schedule_seed)
    )


def test_points_stored_before_the_sparse_fields_keep_their_identity():
    # The seeds were one `seed` before; the configuration's identity changed with them.
    (server,) = ServerScenarioConfig().points()
    before = {"scenario", "batch_size", "warmup_s", "duration_s", "concurrency"}
    before |= {"schedule_seed", "payload_seed"}
    before |= {"target_qps", "requests", "connections"}
    assert set(server.as_dict()) == before


def test_the_driver_sends_an_intermittent_schedule_on_time():
    point = LoadPoint(
        scenario="intermittent", batch_size=1, warmup_s=0.0, duration_s=1.0, schedule_seed=5,
        gap_s=0.1, jitter=0.5,
    )  # fmt: skip
    m, row = drive(SleepPredictor(0.002), point)
    cols = m.log.columns()
    expected = intermittent_offsets(0.1, 0.5, 1.0, 5)
    assert len(cols["intended"]) == len(expected)
    assert np.allclose(np.diff(cols["intended"]), np.diff(expected))
    assert row["errors"] == 0 and row["requests"] == len(expected)
    # Sparse: no request waits for another, so each takes about its service time.
    assert row["latency_p50_ms"] < 30.0


def test_stability_is_not_judged_for_sparse_schedules():
    unstable = stats(
        window_s=60.0, window_qps_spread_beyond_noise=0.9, window_p99_spread_beyond_noise=2.0
    )
    assert not judge(unstable, ServerScenarioConfig()).valid
    for sc in (IntermittentScenarioConfig(), BurstyScenarioConfig()):
        verdict = judge(unstable, sc)
        assert verdict.valid, verdict.reasons
        assert verdict.as_row()["check_stability"] is None
        (stability,) = [r for r in json.loads(verdict.as_row()["verdict_rules"])
                        if r["check"] == "stability"]  # fmt: skip
        assert stability["outcome"] == "not judged" and "not judged" in stability["rule"]
    # The other rules still hold: too few requests is still too short.
    few = judge(stats(window_s=60.0, completed=5, achieved_qps=0.1), IntermittentScenarioConfig())
    assert not few.valid and "too short" in few.reasons[0]


@pytest.mark.parametrize(
    "override, field",
    [
        ("scenario.gap_s=0", "scenario.gap_s"),
        ("scenario.jitter=1.0", "scenario.jitter"),
    ],
)
def test_intermittent_validation_names_the_field(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        validate(compose(["scenario=intermittent", override]))


@pytest.mark.parametrize(
    "override, field",
    [
        ("scenario.burst_size=0", "scenario.burst_size"),
        ("scenario.burst_qps=0", "scenario.burst_qps"),
        ("scenario.idle_s=0", "scenario.idle_s"),
    ],
)
def test_bursty_validation_names_the_field(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        validate(compose(["scenario=bursty", override]))
