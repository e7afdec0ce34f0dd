"""The load driver: schedule (when to send), issue (send and record), statistics, verdict; and
the interface the system under test implements (`bench.load.sut`)."""

from bench.load.driver import Driver
from bench.load.log import Measurement, RequestLog
from bench.load.points import LoadPoint, point_id
from bench.load.stats import PERCENTILE_METHOD, summarize
from bench.load.verdict import RULES, Check, Verdict, judge

__all__ = [
    "PERCENTILE_METHOD",
    "RULES",
    "Check",
    "Driver",
    "LoadPoint",
    "Measurement",
    "RequestLog",
    "Verdict",
    "judge",
    "point_id",
    "summarize",
]
