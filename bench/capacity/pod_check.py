"""The plan, checked where it can be: the pod the plan deploys, measured on the host that
measured the plan, and the plan's capacity for it beside what it sustained.

A plan names a pod shape (`Deployment`: one worker, `cpu_per_replica` cores as its CPU limit and
its intra-op threads, a memory limit over the measured peak). `pod_check` predicts that pod's
capacity at the SLO on the measuring host, the way the planner predicts a server's (the host's
service times, the core sharing of one pod's cores busy against the cores busy when measured,
the band of a `measured` server), and writes the `bench` command that measures it there under
`strategy=container` (the pod's limits as a CFS quota and a memory cap). That run, given
`plan.check_of=<the plan's folder>`, plans with `checked`: the prediction read from the first
plan beside the highest rate its own valid points sustained within the SLO.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from bench.capacity.manifests import MEMORY_LIMIT_MARGIN, Deployment
from bench.capacity.measured import MeasuredConfig, MeasuredHost, sound
from bench.capacity.planner import Target
from bench.capacity.queueing import capacity_qps
from bench.capacity.scaling import core_sharing, host_scale
from bench.capacity.tiers import measured_capacity

# Columns of `checked`'s one row.
COLUMNS = (
    "configuration",
    "pod",
    "host",
    "predicted_qps",
    "predicted_low_qps",
    "predicted_high_qps",
    "measured_qps",
    "error_pct",
    "in_band",
    "measured_from",
    "plan",
)


@dataclass(frozen=True)
class PodCheck:
    """The plan's pod, how to measure it on its host, and the capacity the plan expects of it."""

    configuration: str
    host: str
    cpus: int
    threads: int
    memory_mb: int
    percentile: str
    slo_ms: float
    predicted_qps: float
    predicted_low_qps: float
    predicted_high_qps: float
    overrides: tuple[str, ...]
    # What the prediction leaves out, in words ("" where nothing known).
    caveat: str = ""

    @property
    def pod(self) -> str:
        return f"{self.cpus} CPU, {self.threads} thread(s), {self.memory_mb} MB"

    def command(self, plan_folder: str) -> str:
        """The `bench` command that measures this pod, its plan folder named for its report."""
        check_of = shlex.quote(f"plan.check_of={plan_folder}")
        return "bench " + " ".join([*map(shlex.quote, self.overrides), check_of])

    def sentence(self, plan_folder: str) -> str:
        return (
            f"The plan's pod ({self.pod}; {self.configuration}) should sustain "
            f"{self.predicted_qps:.1f} requests/s (band {self.predicted_low_qps:.1f}-"
            f"{self.predicted_high_qps:.1f}) at {self.percentile} under {self.slo_ms:g} ms on "
            f"{self.host}.{' ' + self.caveat if self.caveat else ''} Measure it there, under the "
            f"pod's limits, with:\n{self.command(plan_folder)}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "overrides": list(self.overrides)}

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> PodCheck:
        return cls(**{**stored, "overrides": tuple(stored["overrides"])})


def pod_check(
    measured: MeasuredConfig, host: MeasuredHost, deployment: Deployment, target: Target
) -> PodCheck:
    """The check of `deployment`'s pod on `host`, which measured `measured`."""
    threads = deployment.cpu_per_replica
    # One pod's cores busy, against the workers busy when the service times were measured.
    model = measured.core_sharing
    sharing = core_sharing(host.facts, threads, host.cores, model) / core_sharing(
        host.facts, measured.workers * threads, host.cores, model
    )
    # The host that measured it: factor 1 in MEASURED_BAND, at its slowest, as the plan sizes.
    factor = (
        host_scale(host.facts, host.facts, measured.precision, measured.config["backend"]["name"])
        .times(sharing)
        .drifted(*measured.drift)
    )
    band = [
        capacity_qps(
            measured.service_s / f,
            1,
            target.slo_ms,
            target.percentile,
            extra_s=measured.overhead_s,
        )
        for f in (factor.factor, factor.low, factor.high)
    ]
    memory_mb = max(16, math.ceil(deployment.rss_mb_per_replica * MEMORY_LIMIT_MARGIN))
    config = measured.config
    overrides = (
        f"model={config['model']['name']}",
        f"backend={config['backend']['name']}",
        f"optimization={config['optimization']['name']}",
        "strategy=container",
        f"strategy.cpus={threads}",
        f"strategy.memory_mb={memory_mb}",
        f"backend.threads={threads}",
        "scenario=slo_search",
        f"scenario.slo_ms={target.slo_ms:g}",
        f"scenario.slo_percentile={target.percentile}",
        f"plan.slo_ms={target.slo_ms:g}",
        f"plan.percentile={target.percentile}",
    )
    return PodCheck(
        configuration=measured.label,
        host=host.name,
        cpus=threads,
        threads=threads,
        memory_mb=memory_mb,
        percentile=str(target.percentile),
        slo_ms=target.slo_ms,
        predicted_qps=band[0],
        predicted_low_qps=band[1],
        predicted_high_qps=band[2],
        overrides=overrides,
        caveat=(
            "Its service times were measured in-process (strategy=direct), but the pod serves "
            "over HTTP: the prediction holds no time for the protocol and the wire, which a "
            "fast model spends most of its time on; plan from an http or container run to "
            "count them."
            if config["strategy"]["name"] == "direct"
            else ""
        ),
    )


def checked(check: PodCheck, frame: pd.DataFrame, plan_folder: str) -> pd.DataFrame:
    """One row: `check`'s prediction beside the capacity the check run's valid points in
    `frame` sustained within its SLO (NaN, and not in band, where none met it)."""
    rows = frame[sound(frame)] if not frame.empty else frame
    target = Target(math.nan, check.percentile, check.slo_ms, 0.0)
    measured, point = measured_capacity(rows, target)
    error = (check.predicted_qps - measured) / measured * 100 if measured > 0 else math.nan
    inside = bool(measured > 0 and check.predicted_low_qps <= measured <= check.predicted_high_qps)
    row = {
        "configuration": check.configuration,
        "pod": check.pod,
        "host": check.host,
        "predicted_qps": check.predicted_qps,
        "predicted_low_qps": check.predicted_low_qps,
        "predicted_high_qps": check.predicted_high_qps,
        "measured_qps": measured,
        "error_pct": error,
        "in_band": inside,
        "measured_from": point,
        "plan": plan_folder,
    }
    return pd.DataFrame([row], columns=list(COLUMNS))
