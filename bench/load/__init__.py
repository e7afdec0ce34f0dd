"""The load driver: schedule (when to send), issue (send and record), statistics, verdict; and
the interface the system under test implements (`bench.load.sut`).

Its names are imported on first use: the scenarios (`bench.load.scenarios`) are configuration
too, and composing a config to re-plan must not load the driver."""

from importlib import import_module

_WHERE = {
    "Driver": "bench.load.driver",
    "Measurement": "bench.load.log",
    "RequestLog": "bench.load.log",
    "LoadPoint": "bench.load.points",
    "point_id": "bench.load.points",
    "PERCENTILE_METHOD": "bench.load.stats",
    "summarize": "bench.load.stats",
    "RULES": "bench.load.verdict",
    "Check": "bench.load.verdict",
    "Verdict": "bench.load.verdict",
    "judge": "bench.load.verdict",
}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'bench.load' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)


__all__ = sorted(_WHERE)
