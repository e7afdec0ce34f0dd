"""What every option's pure `validate()` uses: the error that names a field, the range checks
whose messages say what was accepted, and `Choice`, the base of closed sets of values.

A closed set is an `Enum` field, so OmegaConf refuses `graph_optimization=ful` at composition
("expected one of [disable, basic, extended, all]") before any code runs; ranges are checked
here, each message naming the field, the bound and the value given.
"""

from __future__ import annotations

from enum import Enum


class ConfigError(ValueError):
    """A configuration value that composes but cannot be used; the message names the field."""


class Choice(str, Enum):
    """A closed set of config values. Members are named as users type them (name == value), so
    a member equals, hashes and prints as its plain string: code and stored results read
    `"nginx"` whether the config came through a schema or from a worker's plain YAML."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Percentile(Choice):
    """The latency percentiles every point reports (`latency_<p>_ms`), for SLOs and targets."""

    p50 = "p50"
    p90 = "p90"
    p95 = "p95"
    p99 = "p99"
    p999 = "p999"


def require(ok: bool, field: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{field}: {message}")


def _bound(value: float | None, ok: bool, field: str, bound: str, nullable: bool, unit: str):
    if value is None:
        require(nullable, field, f"must be {bound}{unit}, got null")
        return
    require(ok, field, f"must be {bound}{unit}{' or null' if nullable else ''}, got {value}")


def at_least(
    value: float | None, minimum: float, field: str, *, nullable: bool = False, unit: str = ""
) -> None:
    """`value >= minimum` (or null where `nullable`); `unit` follows the bound in the message."""
    ok = value is not None and value >= minimum
    _bound(value, ok, field, f">= {minimum:g}", nullable, unit)


def positive(value: float | None, field: str, *, nullable: bool = False, unit: str = "") -> None:
    """`value > 0` (or null where `nullable`)."""
    _bound(value, value is not None and value > 0, field, "> 0", nullable, unit)


def one_of(value: str, accepted: tuple[str, ...], field: str) -> None:
    """For open strings with a few known values that cannot be Enum names (`max-autotune`)."""
    require(value in accepted, field, f"accepted values are {', '.join(accepted)}; got {value!r}")
