"""The thresholds of `bench-compare`'s gate: how much worse a candidate may be, with
confidence, before the command fails; typed `gate.FIELD=VALUE` settings.

Regressions are fractions of the baseline, written as a percentage (`10%`) or a fraction
(`0.1`); `null` switches a metric's gate off. A metric fails the gate only when its whole
confidence interval lies beyond the threshold: a change the measurement cannot tell from its own
noise never fails it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from bench.validation import Choice, ConfigError, at_least, require


class OnInvalid(Choice):
    """What the gate does with a point that is INVALID (or failed) on either side."""

    fail = "fail"  # the gate cannot vouch for it: fail
    skip = "skip"  # leave it out of the gate, and say so


@dataclass(frozen=True)
class GateConfig:
    """What `bench-compare` fails on. Each `max_*_regression` is the largest regression
    tolerated (a fraction of the baseline; None: not gated): p50 and p99 latency (higher; p99
    also of a generative point's time to first token and time per output token), throughput
    (lower: achieved, at the SLO where the scenario has one, and a generative point's output
    tokens per second and goodput), peak memory (higher). `min_accuracy` is the floor of the
    candidate's accuracy against its fp32 reference (top-1 agreement, or the lowest cosine
    similarity for embeddings)."""

    max_p50_regression: float | None = 0.10
    max_p99_regression: float | None = 0.10
    max_throughput_regression: float | None = 0.10
    max_memory_regression: float | None = 0.10
    min_accuracy: float | None = None
    # A change whose interval lies within +-same_within is `same`: the run-to-run drift of a
    # shared host that one run's own samples cannot see (A/A runs here: see the README).
    same_within: float = 0.05
    confidence: float = 0.95
    resamples: int = 2000  # bootstrap resamples per metric
    seed: int = 0  # the bootstrap's seed: the same runs give the same verdicts
    invalid: OnInvalid = OnInvalid.fail

    def validate(self, at: str = "gate") -> None:
        for name in ("max_p50_regression", "max_p99_regression"):
            at_least(getattr(self, name), 0.0, f"{at}.{name}", nullable=True)
        for name in ("max_throughput_regression", "max_memory_regression"):
            value = getattr(self, name)
            at_least(value, 0.0, f"{at}.{name}", nullable=True)
            require(value is None or value < 1, f"{at}.{name}", f"must be < 100%, got {value}")
        value = self.min_accuracy
        ok = value is None or 0 <= value <= 1
        require(ok, f"{at}.min_accuracy", f"must be in [0, 1], got {value}")
        at_least(self.same_within, 0.0, f"{at}.same_within")
        require(
            0.5 <= self.confidence < 1,
            f"{at}.confidence",
            f"must be in [0.5, 1), got {self.confidence}",
        )
        at_least(self.resamples, 100, f"{at}.resamples")


_FRACTIONS = {
    "max_p50_regression",
    "max_p99_regression",
    "max_throughput_regression",
    "max_memory_regression",
    "min_accuracy",
    "same_within",
    "confidence",
}


def _fraction(text: str, field: str) -> float:
    try:
        return float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        raise ConfigError(
            f"{field}: expected a percentage like 10% or a fraction like 0.1, got {text!r}"
        ) from None


def _value(name: str, text: str, field: str) -> object:
    nullable = GateConfig.__dataclass_fields__[name].type.endswith("None")
    if text.lower() in ("null", "none", "") and nullable:
        return None
    if name in _FRACTIONS:
        return _fraction(text, field)
    if name == "invalid":
        accepted = tuple(OnInvalid.__members__)
        require(text in accepted, field, f"accepted values are {', '.join(accepted)}; got {text!r}")
        return OnInvalid(text)
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{field}: expected a whole number, got {text!r}") from None


def gate_config(settings: Sequence[str]) -> GateConfig:
    """A validated GateConfig from `gate.FIELD=VALUE` settings; ConfigError naming the field
    for an unknown one or a value that does not parse or lies out of range."""
    known = [f.name for f in dataclasses.fields(GateConfig)]
    chosen: dict[str, object] = {}
    for setting in settings:
        key, equals, text = setting.partition("=")
        name = key.removeprefix("gate.")
        if not equals or not key.startswith("gate."):
            raise ConfigError(
                f"{setting}: expected gate.FIELD=VALUE, e.g. gate.max_p99_regression=10%"
            )
        require(name in known, key, f"no such setting; the settings are {', '.join(known)}")
        chosen[name] = _value(name, text.strip(), key)
    gate = GateConfig(**chosen)
    gate.validate()
    return gate
