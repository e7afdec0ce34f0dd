"""Load points: what one measurement does. Scenarios (`bench.load.scenarios`) make them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

# Fields added after results were first stored: left out of a point's identity while unset, so
# points stored before them keep their ids and a re-run still skips them.
_LATER_FIELDS = ("gap_s", "jitter", "burst_size", "burst_qps", "idle_s", "trace")


@dataclass(frozen=True)
class LoadPoint:
    scenario: str  # the scenario whose shape issues this point's load
    batch_size: int
    warmup_s: float
    duration_s: float
    schedule_seed: int  # the arrival schedule's seed (Poisson gaps, jitter, bursts)
    payload_seed: int = 0  # the seed of the payloads sent (which items the requests carry)
    concurrency: int | None = None  # closed loop: requests outstanding
    target_qps: float | None = None  # open loop: Poisson arrival rate
    requests: int | None = None  # offline: requests sent at once (None: sized from warm-up)
    connections: int | None = None  # open loop: client connections (None: unlimited)
    gap_s: float | None = None  # intermittent: seconds between requests, on average
    jitter: float | None = None  # intermittent: each gap within +- jitter x gap_s
    burst_size: int | None = None  # bursty: requests per burst
    burst_qps: float | None = None  # bursty: Poisson rate within a burst
    idle_s: float | None = None  # bursty: silence between bursts
    trace: str | None = None  # trace: its settings as JSON (a file's content hash included)

    @property
    def label(self) -> str:
        from bench.load.scenarios import scenario_of

        return scenario_of(self.scenario).label(self)

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not (k in _LATER_FIELDS and v is None)}


def point_id(config_key: dict, point: LoadPoint) -> str:
    """A stable id for (configuration, load point): a re-run in the same folder skips it."""
    blob = json.dumps({"config": config_key, "point": point.as_dict()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
