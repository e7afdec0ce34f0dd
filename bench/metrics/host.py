"""A host fingerprint: what machine and software produced a result, recorded in every row."""

from __future__ import annotations

import json
import platform
import socket
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import psutil

from bench.cpu import cpu_model_and_flags
from bench.metrics.gpu import gpu_names

# ISA features that decide which kernels inference runs on (int8 dot products, bf16, AMX).
ISA_FLAGS = (
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "sve",
)
LIBRARIES = (
    "bench",
    "torch",
    "onnxruntime",
    "onnxruntime-gpu",
    "transformers",
    "numpy",
    "pandas",
    "hydra-core",
    "nvidia-ml-py",
)


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


# The folder holding this package's source: a checkout's top when run from one, site-packages
# when installed from the wheel.
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5, check=True
    ).stdout.strip()


def git_revision(root: Path = SOURCE_ROOT) -> str:
    """The commit of the checkout whose top is `root`, with `+dirty` when it has changes; empty
    when `root` is not a checkout's top (an installed wheel in a venv inside some other
    checkout must not take that checkout's commit: its version is in `host_versions`)."""
    try:
        if Path(_git(root, "rev-parse", "--show-toplevel")).resolve() != root.resolve():
            return ""
        rev = _git(root, "rev-parse", "--short=12", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{rev}+dirty" if dirty else rev


@lru_cache(maxsize=1)
def host_fingerprint() -> dict:
    """Host columns of a results row."""
    model, flags = cpu_model_and_flags()
    gpus = gpu_names()
    return {
        "host_name": socket.gethostname(),
        "host_cpu_model": model,
        "host_cores": psutil.cpu_count(logical=True) or 0,
        "host_physical_cores": psutil.cpu_count(logical=False) or 0,
        "host_isa": ",".join(f for f in ISA_FLAGS if f in flags),
        "host_mem_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "host_gpu": ", ".join(gpus) if gpus else "none",
        "host_os": platform.platform(),
        "host_versions": json.dumps(_versions(), sort_keys=True),
        "git_rev": git_revision(),
    }
