"""The planning target: the load, the latency SLO and the spare capacity to size for."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.validation import Percentile, at_least, positive, require


@dataclass
class AutoscalingConfig:
    """The HorizontalPodAutoscaler simulation: the trace it runs over, the settings it chooses
    from, and what it assumes where nothing was measured."""

    enabled: bool = True
    # The trace: the run's own (a `trace` point's offered rate per window, at the pace the
    # trace file or pattern gives, x its speedup) scaled so that its peak is plan.peak_qps;
    # without one, a diurnal cycle from trough_share x peak_qps to peak_qps over period_s
    # (3600: a day's shape at 24x its pace, harder on the autoscaler than a real day, and
    # 24x fewer requests to simulate; 86400 for a real day).
    period_s: float = 3600.0
    trough_share: float = 0.2
    # The target CPU utilisations tried (a share of the CPU each replica requests).
    targets: list[float] = field(default_factory=lambda: [0.5, 0.6, 0.7, 0.8])
    # Settings keep the SLO when plan.percentile is met in at least this share of the trace's
    # sync periods.
    slo_share: float = 0.99
    # A flash crowd from peak_qps / flash_crowd_factor to peak_qps, for flash_crowd_s.
    flash_crowd_factor: float = 3.0
    flash_crowd_s: float = 600.0
    # A replica's cold start where the results measured none (direct runs measure none).
    assumed_cold_start_s: float = 10.0
    seed: int = 0

    def validate(self, at: str) -> None:
        positive(self.period_s, f"{at}.period_s", unit=" s")
        require(0 <= self.trough_share <= 1, f"{at}.trough_share", "must be in [0, 1]")
        require(
            len(self.targets) > 0 and all(0 < t <= 1 for t in self.targets),
            f"{at}.targets",
            f"must be a non-empty list of utilisations in (0, 1], got {list(self.targets)}",
        )
        require(0 < self.slo_share <= 1, f"{at}.slo_share", "must be in (0, 1]")
        require(self.flash_crowd_factor >= 1, f"{at}.flash_crowd_factor", "must be >= 1")
        positive(self.flash_crowd_s, f"{at}.flash_crowd_s", unit=" s")
        at_least(self.assumed_cold_start_s, 0, f"{at}.assumed_cold_start_s", unit=" s")


@dataclass
class PlanConfig:
    """The target the capacity planner sizes for, from a run's measurements."""

    enabled: bool = True
    peak_qps: float = 100.0
    percentile: Percentile = Percentile.p99
    slo_ms: float = 100.0
    # Generative models (`bench.capacity.generative`): time to first token and time per output
    # token at `percentile`, ms (null: not a constraint); they replace `slo_ms` there.
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None
    # Spare capacity on top of the peak: servers = ceil(peak * (1 + headroom) / capacity).
    headroom: float = 0.3
    # Never fewer servers than this (2: survive losing one).
    min_servers: int = 1
    # Euros per US dollar, to compare a serverless cost priced in USD with EUR server prices;
    # an exchange rate is a price: null until you give one (dated, in your own preset).
    eur_per_usd: float | None = None
    # Container image the Kubernetes manifests name, pinned there by digest (a placeholder until
    # you push the build of plan/image: see plan/kubernetes/README.md); build it from the
    # generated Dockerfile.
    image: str = "REGISTRY/bench-serving"
    # The HorizontalPodAutoscaler's settings, chosen by simulating it over a trace.
    autoscaling: AutoscalingConfig = field(default_factory=AutoscalingConfig)
    # A run folder whose plan this run checks: this run measured that plan's pod (the command
    # in its plan/pod_check.txt), and its plan puts that plan's predicted capacity for the pod
    # beside what the pod sustained here (plan/checked.csv). "": none.
    check_of: str = ""

    def validate(self, at: str = "plan") -> None:
        positive(self.peak_qps, f"{at}.peak_qps")
        positive(self.slo_ms, f"{at}.slo_ms")
        positive(self.slo_ttft_ms, f"{at}.slo_ttft_ms", nullable=True)
        positive(self.slo_tpot_ms, f"{at}.slo_tpot_ms", nullable=True)
        at_least(self.headroom, 0, f"{at}.headroom")
        at_least(self.min_servers, 1, f"{at}.min_servers")
        positive(self.eur_per_usd, f"{at}.eur_per_usd", nullable=True)
        require(
            not self.check_of or (Path(self.check_of).expanduser() / "plan").is_dir(),
            f"{at}.check_of",
            f"must be a run folder with a plan in it (its plan/ folder), got {self.check_of!r}",
        )
        self.autoscaling.validate(f"{at}.autoscaling")
