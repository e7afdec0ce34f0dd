"""What this machine's CPU is and can do, read from /proc/cpuinfo: facts the host fingerprint
records and that a backend's choice of kernels depends on. No stage of the pipeline: any may
import it."""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

# Integer dot-product instructions. Without one, x86 int8 kernels multiply u8 by s8 with
# `vpmaddubsw`, whose int16 sums saturate on full-range 8-bit weights.
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@lru_cache(maxsize=1)
def cpu_model_and_flags() -> tuple[str, frozenset[str]]:
    model, flags = platform.processor() or platform.machine(), frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return model, flags


def has_vnni() -> bool:
    return any(flag in cpu_model_and_flags()[1] for flag in VNNI_FLAGS)
