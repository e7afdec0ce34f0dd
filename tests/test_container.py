"""The `container` strategy for real: workers under a CFS quota and a memory cap (Podman, or
cgroups of their own), the throttling they suffer counted per load point, the health endpoints
the Kubernetes probes use, and nothing left behind."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from bench.config import validate
from bench.models import build_model
from bench.run import run_benchmark
from bench.validation import ConfigError
from runners import Request, RunnerError, build_runner
from runners.cgroups import cgroup_mounts
from runners.isolation import open_sandbox
from runners.sandbox import Limits
from tests.conftest import compose

TINY = [
    "model=mlp",
    "strategy=container",
    "scenario=concurrency",
    "scenario.levels=[2]",
    "scenario.warmup_s=0.2",
    "scenario.duration_s=0.8",
    "progress=false",
    "accuracy_samples=4",
]
QUOTA_KINDS = ("podman", "cgroup-v1", "cgroup-v2")


def _unavailable(isolation: str) -> str | None:
    """Why `isolation` cannot set a CPU quota on this machine, or None if it can."""
    try:
        sandbox = open_sandbox(isolation, Limits(cpus=1.0), "probe")
    except RunnerError as exc:
        return str(exc)
    sandbox.close()
    return None if sandbox.kind in QUOTA_KINDS else f"only {sandbox.kind} here: {sandbox.note}"


def quota_by(isolation: str) -> pytest.MarkDecorator:
    """Skip unless `isolation` can set a CPU quota here (Podman installed, or root with
    cgroups: CI's .ci/run installs Podman and runs as root)."""
    why = _unavailable(isolation)
    return pytest.mark.skipif(why is not None, reason=f"isolation={isolation}: {why}")


needs_quota = quota_by("auto")
# The two isolations with CFS counters, each where it works.
ISOLATIONS = [
    pytest.param("podman", marks=quota_by("podman"), id="podman"),
    pytest.param("cgroup", marks=quota_by("cgroup"), id="cgroup"),
]


def _our_cgroups() -> set[str]:
    return {p.name for mount in cgroup_mounts() for p in mount.rglob("bench-container-*")}


@pytest.mark.parametrize(
    "isolation, cpus",
    [
        pytest.param("podman", 0.5, marks=quota_by("podman"), id="podman-half-a-cpu"),
        pytest.param("cgroup", 0.5, marks=quota_by("cgroup"), id="cgroup-half-a-cpu"),
        pytest.param("auto", None, marks=needs_quota, id="no-limit"),
    ],
)
def test_a_cpu_quota_below_the_threads_throttles_the_worker(isolation, cpus, tmp_path, cache_dir):
    limit = "null" if cpus is None else cpus
    cfg = compose(
        [*TINY, f"strategy.isolation={isolation}", f"strategy.cpus={limit}", "backend.threads=2"]
        + [f"cache_dir={cache_dir}"]
    )
    row = run_benchmark(cfg, tmp_path).iloc[0]
    assert row["status"] == "measured" and row["errors"] == 0, row["error"]
    assert row["accuracy_cosine_min"] > 0.9999
    assert row["isolation"] in QUOTA_KINDS and row["protocol"] == "http"
    assert isolation == "auto" or row["isolation"].startswith(isolation)
    assert row["memory_limit_mb"] == 2048 and 0 < row["memory_peak_mb"] < 2048
    assert row["oom_kills"] == 0
    if cpus is None:
        assert row["limits_note"].startswith(("no CPU quota", "podman"))
        assert row["throttled_periods"] == 0 and row["throttled_s"] == 0
    else:
        # Two busy threads on half a CPU: most 100 ms periods run out of quota.
        assert row["cpu_limit"] == 0.5
        assert row["throttled_periods"] > 0 and row["throttled_fraction"] > 0.3
        assert row["throttled_s"] > 0


@needs_quota
def test_throttling_is_counted_per_point_and_the_probes_answer(cache_dir):
    cfg = compose(
        ["model=mlp", "strategy=container", "strategy.cpus=0.5", f"cache_dir={cache_dir}"]
    )
    before = _our_cgroups()

    async def main():
        runner = build_runner(cfg)
        await runner.start()
        try:
            address = runner.addresses[0]
            async with aiohttp.ClientSession() as session:
                probes = []
                for path in ("/v2/health/live", "/v2/health/ready"):
                    async with session.get(f"http://{address}{path}") as response:
                        probes.append(response.status)
            runner.begin_point()
            await asyncio.sleep(0.3)
            idle = runner.facts.throttled_periods
            runner.begin_point()
            sample = build_model(cfg.model).samples(1, 0)
            deadline = asyncio.get_running_loop().time() + 1.0
            while asyncio.get_running_loop().time() < deadline:
                await asyncio.gather(*(runner.infer(Request(i, sample)) for i in range(4)))
            busy = runner.facts.as_row()
            return probes, idle, busy, _our_cgroups() - before
        finally:
            await runner.stop()

    probes, idle, busy, made = asyncio.run(main())
    assert probes == [200, 200]  # what the Kubernetes manifests probe
    assert idle == 0
    assert busy["throttled_periods"] > 0 and busy["cpu_periods"] >= busy["throttled_periods"]
    assert made  # the worker's own cgroups (or its container's) existed while it ran...
    assert _our_cgroups() - before == set()  # ...and are gone after stop()


def test_a_named_isolation_that_cannot_work_here_says_why(monkeypatch):
    monkeypatch.setattr("runners.podman.podman_problem", lambda: "podman is not installed")
    with pytest.raises(RunnerError, match="isolation=podman cannot work here: podman is not"):
        open_sandbox("podman", Limits(cpus=1.0), "probe")


def test_the_affinity_fallback_pins_whole_cores_and_caps_the_address_space():
    sandbox = open_sandbox("affinity", Limits(cpus=0.5, memory_mb=256), "probe")
    command = sandbox.command(["python", "-V"])
    assert sandbox.kind == "affinity" and "no throttling counters" in sandbox.note
    assert "--cores=0" in command and "--address-space-mb=256" in command
    assert command[command.index("--") + 1 :] == ["python", "-V"]
    assert sandbox.cpu_counters() is None


@pytest.mark.parametrize(
    "override, field",
    [
        ("strategy.cpus=0", "strategy.cpus"),
        ("strategy.memory_mb=1", "strategy.memory_mb"),
    ],
)
def test_container_limits_are_validated(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        validate(compose(["strategy=container", override]))
