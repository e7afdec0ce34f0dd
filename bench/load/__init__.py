"""The load driver: schedule (when to send), issue (send and record), statistics, verdict."""

from bench.load.driver import Driver
from bench.load.log import Measurement, RequestLog
from bench.load.points import LoadPoint, expand, next_point, point_id
from bench.load.stats import PERCENTILE_METHOD, summarize
from bench.load.verdict import Verdict, describe_rules, judge

__all__ = [
    "PERCENTILE_METHOD",
    "Driver",
    "LoadPoint",
    "Measurement",
    "RequestLog",
    "Verdict",
    "expand",
    "describe_rules",
    "judge",
    "next_point",
    "point_id",
    "summarize",
]
