"""Trace replay (`scenario=trace`) and the planner's HPA simulation: a bad trace file refused
before anything is measured, the generators seeded and shaped as asked, a short real run with
its time series per window, and the simulated HorizontalPodAutoscaler on synthetic inputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import traces
from bench.capacity.autoscaling import Hpa, Rules, desired_replicas, simulate_hpa
from bench.capacity.queueing import on_demand
from bench.capacity.store import Plan
from tests.conftest import LENIENT, checkout_env

EXAMPLE = "pkg://bench.conf/scenario/data/example_day.csv"


def _bench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=cwd,
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


BAD = {
    "missing.csv": ("time,qps\n1,2\n", "line 1: missing column: need timestamp_s"),
    "text.csv": ("timestamp_s\n0.5\nsoon\n", "line 3: timestamp_s 'soon' is not a number"),
    "negative.csv": ("start_s,rate_qps\n0,5\n10,-2\n", "line 3: rate_qps -2 is negative"),
    "unsorted.csv": ("timestamp_s\n0\n2\n1\n", "line 4: timestamp_s 1 is before the line"),
    "empty.csv": ("timestamp_s\n", "empty: no rows under the header"),
    "blank.csv": ("timestamp_s\n1\n\n", ""),  # a blank line at the end is no row
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_trace_file_is_named_with_its_line_and_problem(tmp_path, name):
    text, expected = BAD[name]
    path = tmp_path / name
    path.write_text(text)
    if not expected:
        assert traces.read_trace(str(path)).timestamps.tolist() == [1.0]
        return
    with pytest.raises(traces.TraceError) as caught:
        traces.read_trace(str(path))
    assert str(caught.value).startswith(f"{path}: ") and expected in str(caught.value)


def test_the_cli_refuses_a_bad_trace_before_measuring_with_exit_2(tmp_path):
    path = tmp_path / "day.csv"
    path.write_text("start_s,rate_qps\n0,5\n60,x\n")
    proc = _bench(
        "model=busy", "scenario=trace", f"scenario.path={path}", "hydra.run.dir=run", cwd=tmp_path
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"configuration error: {path}: line 3: rate_qps 'x' is not a number" in proc.stderr
    assert not (tmp_path / "run" / "results.parquet").exists()


def test_generators_are_seeded_and_shaped_as_asked():
    day = traces.diurnal(trough_qps=10, peak_qps=100, period_s=600, length_s=600)
    once, again = traces.arrivals(day, seed=1), traces.arrivals(day, seed=1)
    assert np.array_equal(once, again) and not np.array_equal(once, traces.arrivals(day, seed=2))
    counts = np.histogram(once, bins=10, range=(0, 600))[0] / 60.0
    # Lowest at the ends (the trough), highest in the middle (the peak), close to the rates.
    assert counts[0] < 20 and counts[-1] < 20 and 80 < counts[4] < 120 and 80 < counts[5] < 120
    crowd = traces.arrivals(traces.flash_crowd(20, 5, at_s=100, crowd_s=100, length_s=300), 0)
    before, during, after = np.histogram(crowd, bins=[0, 100, 200, 300])[0] / 100.0
    assert 15 < before < 25 and 85 < during < 115 and 15 < after < 25
    # Played 10x faster at a tenth of the rate: the same count in a tenth of the time.
    fast = traces.arrivals(day, seed=1, speedup=10, scale=0.1)
    assert fast.max() <= 60 and abs(len(fast) - len(once) / 10) < 5 * np.sqrt(len(once) / 10)


def test_a_per_request_trace_replays_its_times_scaled_and_faster(tmp_path):
    path = tmp_path / "requests.parquet"
    pd.DataFrame({"timestamp_s": np.arange(0.0, 100.0, 0.5)}).to_parquet(path)
    trace = traces.read_trace(str(path))
    assert trace.length_s == 99.5 and len(traces.arrivals(trace, 0)) == 200
    doubled = traces.arrivals(trace, 0, speedup=2, scale=2.0)
    assert len(doubled) == 400 and doubled.max() <= 50


def test_the_example_trace_ships_and_reads():
    trace = traces.read_trace(EXAMPLE)
    assert trace.length_s == 86400 and 15 < trace.peak_qps < 25 and trace.rates.min() > 0


def test_a_short_trace_run_stores_its_time_series_and_plans_autoscaling(tmp_path, cache_dir):
    run = tmp_path / "run"
    proc = _bench(
        "model=busy",
        "model.service_ms=2",
        "scenario=trace",
        "scenario.pattern=flash_crowd",
        "scenario.base_qps=10",
        "scenario.factor=4",
        "scenario.crowd_at_s=2",
        "scenario.crowd_s=2",
        "scenario.duration_s=6",
        "scenario.window_s=1",
        "accuracy_samples=0",
        "plan.autoscaling.targets=[0.6]",
        *LENIENT,
        f"cache_dir={cache_dir}",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = pd.read_parquet(run / "results.parquet").iloc[0]
    assert row["label"] == "trace flash crowd 4x 10 qps" and row["timeline_window_s"] == 1.0
    assert list(row["timeline_start_s"]) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    offered = np.asarray(row["timeline_offered_qps"])
    # The crowd's two seconds offer about 4x the others.
    assert offered[2:4].mean() > 2 * max(offered[:2].mean(), offered[4:].mean())
    assert len(row["timeline_p99_ms"]) == 6 and sum(row["timeline_errors"]) == 0
    assert sum(row["timeline_qps"]) == pytest.approx(row["completed"], abs=3)
    plan = Plan.read(run)
    assert {"hpa", "fixed at peak"} <= set(plan.autoscaling["case"])
    assert "run's trace flash crowd" in plan.autoscaling_sentence
    assert "assumed (none measured)" in plan.autoscaling_sentence
    hpa = plan.manifests["hpa.yaml"]["spec"]
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    report = (run / "report.html").read_text()
    assert "Latency over time" in report and "Autoscaling, simulated" in report


# --- the HPA, on synthetic inputs --------------------------------------------------------------


def _step(low: float, high: float, at_s: float, back_s: float, length_s: float) -> np.ndarray:
    trace = traces.flash_crowd(low, high / low, at_s, back_s - at_s, length_s)
    return traces.arrivals(trace, seed=0)


def test_the_replica_calculator_follows_kubernetes():
    # Within the tolerance nothing moves; outside it, ceil(ready x utilisation / target).
    assert desired_replicas(4, 4, 0, 0.65, 0.6, 0.1) == 4
    assert desired_replicas(4, 4, 0, 0.9, 0.6, 0.1) == 6
    assert desired_replicas(4, 4, 0, 0.3, 0.6, 0.1) == 2
    # Replicas still starting count as 0% on a scale-up: 2 ready at 90% and 2 starting is 45%.
    assert desired_replicas(4, 2, 2, 0.9, 0.6, 0.1) == 4
    assert desired_replicas(4, 2, 2, 1.0, 0.4, 0.1) == 5


def test_the_hpa_scales_up_after_a_step_once_replicas_are_ready():
    service = np.array([0.02])  # 50 requests/s a replica
    arrivals = _step(10, 120, at_s=300, back_s=900, length_s=900)
    timeline = simulate_hpa(arrivals, service, Hpa(1, 10, 0.6), 45.0, 200, "p99", 900)
    before, after = timeline[timeline["t_s"] < 300], timeline[timeline["t_s"] >= 600]
    assert (before["replicas"] == 1).all() and before["slo_met"].all()
    assert (after["replicas"] >= 4).all() and after["slo_met"].all()
    # A replica set serves only after its 45 s cold start: the first scale-up is ready 3 sync
    # periods later, and the SLO is broken meanwhile.
    first = timeline[timeline["replicas"] > 1].iloc[0]
    ready = timeline[timeline["ready_replicas"] > 1].iloc[0]
    assert ready["t_s"] - first["t_s"] == 45.0
    assert not timeline[(timeline["t_s"] >= 300) & (timeline["t_s"] < ready["t_s"])][
        "slo_met"
    ].any()


def test_scale_down_waits_for_its_stabilisation_window():
    service = np.array([0.02])
    arrivals = _step(10, 120, at_s=60, back_s=600, length_s=1500)
    slow = simulate_hpa(arrivals, service, Hpa(1, 10, 0.6), 15.0, 200, "p99", 1500)
    quick = Hpa(1, 10, 0.6, scale_down=Rules(0, Hpa(1, 1, 1).scale_down.policies))
    fast = simulate_hpa(arrivals, service, quick, 15.0, 200, "p99", 1500)

    def first_drop(timeline: pd.DataFrame) -> float:
        late = timeline[timeline["t_s"] >= 600]
        return float(late[late["replicas"] < late["replicas"].iloc[0]]["t_s"].iloc[0])

    # The load falls at 600 s: with no window the replicas go at the next sync; with the
    # default 300 s one they stay until the high recommendations of the last 300 s are past
    # (the last came at the end of the high load's scale-up, a few periods before 600 s).
    assert first_drop(fast) <= 630 and first_drop(slow) >= 800
    assert slow["replicas"].iloc[-1] == fast["replicas"].iloc[-1] == 1


def test_scale_to_zero_pays_a_cold_start_after_each_idle_keep_alive():
    arrivals = np.array([0.0, 0.1, 3.0, 20.0])
    found = on_demand(
        arrivals, np.full(4, 0.5), cold_start_s=2.0, keep_alive_s=5.0, max_instances=2
    )
    # Two cold instances at once; the third request reuses one; the fourth comes after both
    # stopped (idle since 2.6 and 3.5, keep-alive 5 s).
    assert found.cold_starts == 3 and list(found.latencies_s) == [2.5, 2.5, 0.5, 2.5]
    assert found.busy_s == pytest.approx(4 * 0.5 + 3 * 2.0)
    queued = on_demand(np.array([0.0, 0.0, 0.0]), np.full(3, 1.0), 0.0, 5.0, max_instances=1)
    assert list(queued.latencies_s) == [1.0, 2.0, 3.0] and queued.cold_starts == 1
