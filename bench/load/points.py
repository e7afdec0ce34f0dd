"""Load points: what one measurement does, expanded from a scenario config."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from bench.config import ScenarioConfig

CLOSED_LOOP = ("single_stream", "concurrency")


@dataclass(frozen=True)
class LoadPoint:
    scenario: str
    batch_size: int
    warmup_s: float
    duration_s: float
    seed: int
    concurrency: int | None = None  # closed loop: requests outstanding
    target_qps: float | None = None  # open loop: Poisson arrival rate
    requests: int | None = None  # offline: requests sent at once (None: sized from warm-up)
    connections: int | None = None  # open loop: client connections (None: unlimited)

    @property
    def label(self) -> str:
        if self.target_qps is not None:
            return f"{self.scenario} {self.target_qps:g} qps"
        if self.concurrency is not None and self.scenario == "concurrency":
            return f"concurrency {self.concurrency}"
        return f"{self.scenario} batch {self.batch_size}"

    def as_dict(self) -> dict:
        return asdict(self)


def expand(sc: ScenarioConfig) -> list[LoadPoint]:
    """The load points of one scenario config, in the order they are measured."""
    common = dict(
        scenario=sc.name,
        batch_size=sc.batch_size,
        warmup_s=sc.warmup_s,
        duration_s=sc.duration_s,
        seed=sc.seed,
    )
    if sc.name == "single_stream":
        return [LoadPoint(**common, concurrency=1)]
    if sc.name == "concurrency":
        return [LoadPoint(**common, concurrency=int(level)) for level in sc.levels]
    if sc.name == "server":
        return [LoadPoint(**common, target_qps=float(sc.target_qps), connections=sc.connections)]
    if sc.name == "offline":
        return [LoadPoint(**common, requests=sc.requests)]
    raise ValueError(f"scenario.name: no load points defined for {sc.name!r}")


def point_id(config_key: dict, point: LoadPoint) -> str:
    """A stable id for (configuration, load point): a re-run in the same folder skips it."""
    blob = json.dumps({"config": config_key, "point": point.as_dict()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
