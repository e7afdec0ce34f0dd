"""`bench-compare`'s false-alarm rate over A/A runs and its detection rate for a real 10%
slowdown, from real runs of the `bench` command.

Run: pytest tests/benchmarks/test_compare_gate.py --benchmark-only -s

RUNS runs of the baseline (`model=busy`, 5 ms of Python per request, one closed-loop point
at concurrency 1) and RUNS of the candidate (`model.service_ms` 10% higher) alternate, so a
noisy neighbour slows both alike. Every pair of baseline runs is an A/A comparison (RUNS*(RUNS-1)/2
of them) and every baseline-candidate pair an A/B one (RUNS^2), each compared by the
`bench-compare` command with the gate's thresholds at 5%. Printed: per metric, how often the
verdict was slower, faster, same or unsure, and how often the gate failed.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bench.cli import compare_main
from bench.compare import compare
from bench.compare.gate import gate_config
from tests.conftest import checkout_env

RUNS = 5
SERVICE_MS = 5.0
POINT = [
    "model=busy",
    "scenario=concurrency",
    "scenario.levels=[1]",
    "scenario.warmup_s=1",
    "scenario.duration_s=6",
    "scenario.min_duration_s=5",
    "progress=false",
    "report=false",
    "plan.enabled=false",
]
GATE = [
    "gate.max_p50_regression=5%",
    "gate.max_p99_regression=5%",
    "gate.max_throughput_regression=5%",
    "gate.max_memory_regression=5%",
    # An INVALID point (unstable on a noisy host) is counted apart, not as an alarm.
    "gate.invalid=skip",
]


def _run(folder: Path, service_ms: float, cache_dir: str) -> Path:
    args = [*POINT, f"model.service_ms={service_ms}", f"cache_dir={cache_dir}"]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args, f"hydra.run.dir={folder}"],
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return folder


def _tally(pairs: list[tuple[Path, Path]]) -> tuple[dict[str, Counter], int]:
    """Per metric, the verdicts over `pairs`; and how many failed the gate (the command's exit
    status, checked against the comparison's answer)."""
    gate = gate_config(GATE)
    verdicts: dict[str, Counter] = {"INVALID point": Counter()}
    failed = 0
    for before, after in pairs:
        comparison = compare(before, after, gate)
        verdicts["INVALID point"][str(not comparison.points[0].valid)] += 1
        for change in comparison.points[0].changes:
            verdicts.setdefault(change.metric, Counter())[str(change.verdict)] += 1
        with contextlib.redirect_stdout(io.StringIO()):
            status = compare_main(
                [str(before), str(after), *GATE, "--markdown", str(after / "c.md")]
            )
        assert status == (0 if comparison.passed else 1)
        failed += status == 1
    return verdicts, failed


@pytest.mark.benchmark
def test_false_alarms_over_a_a_runs_and_detection_of_a_10_percent_slowdown(
    benchmark, tmp_path, cache_dir
):
    baseline, candidate = [], []
    for i in range(RUNS):
        baseline.append(_run(tmp_path / f"a{i}", SERVICE_MS, cache_dir))
        candidate.append(_run(tmp_path / f"b{i}", SERVICE_MS * 1.1, cache_dir))
    same_pairs = list(itertools.combinations(baseline, 2))
    slow_pairs = list(itertools.product(baseline, candidate))
    a_a, a_a_failed = _tally(same_pairs)
    a_b, a_b_failed = _tally(slow_pairs)
    benchmark.pedantic(lambda: None, rounds=1)
    share = a_a_failed / len(same_pairs)
    print(f"\nA/A: {len(same_pairs)} pairs, gate failed {a_a_failed} ({share:.0%})")
    for metric, counts in a_a.items():
        print(f"  {metric:>16}: {dict(counts)}")
    print(
        f"A/B (+10% service time): {len(slow_pairs)} pairs, gate failed {a_b_failed} "
        f"({a_b_failed / len(slow_pairs):.0%})"
    )
    for metric, counts in a_b.items():
        print(f"  {metric:>16}: {dict(counts)}")
    # A false alarm is a gate failure on the same configuration measured twice.
    assert a_a_failed <= len(same_pairs) // 10
