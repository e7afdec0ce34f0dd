"""The planning target: the load, the latency SLO and the spare capacity to size for."""

from __future__ import annotations

from dataclasses import dataclass

from bench.validation import Percentile, at_least, positive


@dataclass
class PlanConfig:
    """The target the capacity planner sizes for, from a run's measurements."""

    enabled: bool = True
    peak_qps: float = 100.0
    percentile: Percentile = Percentile.p99
    slo_ms: float = 100.0
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

    def validate(self, at: str = "plan") -> None:
        positive(self.peak_qps, f"{at}.peak_qps")
        positive(self.slo_ms, f"{at}.slo_ms")
        at_least(self.headroom, 0, f"{at}.headroom")
        at_least(self.min_servers, 1, f"{at}.min_servers")
        positive(self.eur_per_usd, f"{at}.eur_per_usd", nullable=True)
