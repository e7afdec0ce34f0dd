"""The tier of a results row: where its point ran. A host (its CPU model and cores, as its
fingerprint names them), optionally narrowed by limits: a container's CPU quota, an edge device
profile, a GPU. One label per row (`tier`), so that results from many hosts and limits group
without guesswork:

    epyc-2c                 AMD EPYC, 2 cores, no limit
    epyc-2c/cpus=1          the same host, the worker under a CFS quota of 1 core
    epyc-2c/edge=small      the same host, the worker confined to the `small` device profile
    xeon-gold-6338-64c/gpu=a100-sxm4-80gb

A user's own label (`tier=...` in the run's config) replaces the derived one. Derived here only,
from the row's own columns (host fingerprint, the strategy's and backend's config fields), so a
row written before tiers existed gets the same label when read.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

# Words of a CPU model string that name no part: marks, vendors, the clock.
_NOISE = re.compile(
    r"\((R|TM)\)|\b(AMD|Intel|Genuine|CPU|Processor|\d+-Core)\b|@\s*[\d.]+\s*GHz|with .*$",
    flags=re.IGNORECASE,
)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


def host_label(row: Mapping[str, Any]) -> str:
    """The host part of a tier: its CPU model without marks and vendor, and its cores
    ("AMD EPYC 7B13", 2 cores: `epyc-7b13-2c`)."""
    model = _slug(_NOISE.sub(" ", str(_value(row, "host_cpu_model") or ""))) or "cpu"
    cores = _value(row, "host_cores")
    return f"{model}-{int(cores)}c" if _number(cores) else model


def limits_label(row: Mapping[str, Any]) -> str:
    """The limits part of a tier ("cpus=1", "edge=small", "gpu=h100"), "" for none: the
    container's CPU quota, the edge device profile, the GPU the backend ran on."""
    parts = []
    strategy = _value(row, "strategy")
    cpus = _value(row, "strategy.cpus")
    if strategy == "container" and _number(cpus):
        parts.append(f"cpus={float(cpus):g}")
    if strategy == "edge":
        device = _value(row, "strategy.device")
        if isinstance(device, str):
            try:
                device = json.loads(device)
            except ValueError:
                device = {"name": device}
        if isinstance(device, Mapping) and device.get("name"):
            parts.append(f"edge={device['name']}")
    if _value(row, "backend.device") == "cuda":
        gpu = str(_value(row, "host_gpu") or "")
        first = gpu.split(",")[0]
        name = _slug(re.sub(r"\bNVIDIA\b|\bTesla\b", " ", first, flags=re.IGNORECASE))
        parts.append(f"gpu={name or 'cuda'}")
    return "/".join(parts)


def derived_tier(row: Mapping[str, Any]) -> str:
    """The tier a row's own columns say it ran on: host, then limits."""
    return "/".join(filter(None, [host_label(row), limits_label(row)]))


def tier_of(row: Mapping[str, Any], label: str | None = None) -> str:
    """The row's tier: the user's `label` where given, else `derived_tier`."""
    return label.strip() if isinstance(label, str) and label.strip() else derived_tier(row)


def _value(row: Mapping[str, Any], key: str) -> Any:
    value = row.get(key)
    return None if isinstance(value, float) and math.isnan(value) else value


def _number(value: Any) -> bool:
    try:
        return math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        return False
