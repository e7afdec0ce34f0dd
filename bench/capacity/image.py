"""The container image a user builds for their own registry: the serving worker with the
configuration that was measured, speaking the Open Inference Protocol's REST API on port 8000,
where the Kubernetes manifests point their probes (/v2/health/ready, /v2/health/live).

Generated, not built: these machines reach no registry and run no container daemon. The folder
written is a whole build context, so `docker build -t IMAGE plan/image` is all it takes, from
anywhere: the Dockerfile, the serving config, `requirements.txt` (the `serve` extra of this
package's metadata, each pinned to the version installed where the run was measured) and this
package as a wheel, installed without its dependencies.

The wheel is packed here from the code this process imports (`distribution_wheel`), not built
from a source tree by `pip wheel` nor named on a package index: an installed wheel leaves no
source tree to build from, an editable install or a checkout on PYTHONPATH would need setuptools
in a build environment (network, seconds on every plan, `build/` left in the checkout), the
source an editable install names need not be the code this process runs, and the name `bench` on
a public index is not ours. Packing what is imported gives, byte for byte, the code that was
measured, in well under a second, with nothing but the standard library.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import importlib.util
import json
import re
import shlex
import warnings
import zipfile
from importlib import metadata
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

PORT = 8000
BASE_IMAGE = "python:3.11-slim"
# PyPI's Linux torch wheels bundle CUDA libraries (gigabytes) that a CPU node never loads.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CACHE_DIR = "/opt/bench-cache"
DISTRIBUTION = "bench"
# The extra of the distribution's metadata that holds what the serving worker imports.
SERVE_EXTRA = "serve"
# The image's platform, for the requirements' environment markers.
_IMAGE_ENVIRONMENT = {
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "sys_platform": "linux",
    "python_version": "3.11",
}
# The image's platform for a requirement of the base (no extra).
_IMAGE_BASE = {**_IMAGE_ENVIRONMENT, "extra": ""}


def pinned_requirements(
    distribution: str = DISTRIBUTION, extra: str | None = SERVE_EXTRA
) -> list[str]:
    """What the image installs: the requirements of the distribution's `extra` (the serving
    worker's imports; None: every run-time requirement, the measuring harness's), for the
    image's platform, each pinned to the version installed here (the one measured) where there
    is one. Metadata installed before the distribution declared that extra (an editable install
    not reinstalled since) gives every run-time requirement instead, with a warning: a larger
    image that still serves."""
    requirements = [Requirement(text) for text in installed(distribution).requires or []]
    if extra is None:
        chosen = [r for r in requirements if r.marker is None or r.marker.evaluate(_IMAGE_BASE)]
    else:
        chosen = [r for r in requirements if _in_extra(r, extra)]
    if not chosen:
        warnings.warn(
            f"the installed metadata of {distribution} declares no {extra!r} extra (installed "
            f"before it was added? reinstall it): the image gets every run-time requirement",
            stacklevel=2,
        )
        chosen = [r for r in requirements if r.marker is None or r.marker.evaluate(_IMAGE_BASE)]
    pins = []
    for requirement in chosen:
        try:
            version = Version(metadata.version(requirement.name)).public
        except metadata.PackageNotFoundError:
            pins.append(f"{requirement.name}{requirement.specifier}")
            continue
        pins.append(f"{requirement.name}=={version}")
    return pins


def _in_extra(requirement: Requirement, extra: str) -> bool:
    """Whether a requirement belongs to `extra` on the image's platform (not to the base)."""
    marker = requirement.marker
    if marker is None:
        return False
    return marker.evaluate({**_IMAGE_ENVIRONMENT, "extra": extra}) and not marker.evaluate(
        _IMAGE_BASE
    )


def distribution_wheel(folder: Path, distribution: str = DISTRIBUTION) -> Path:
    """Write the distribution, as this process imports it, into `folder` as a pure-Python wheel;
    return its path. Its packages are the top-level ones the distribution names
    (`top_level.txt`), read from where they are imported (an installed wheel's site-packages,
    an editable install's or a checkout's source; caches left out); its metadata (dependencies,
    entry points) is the installed distribution's. The same files give the same bytes, so an
    image rebuilt from an unchanged plan reuses its layers."""
    dist = installed(distribution)
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"]).lower()
    info = f"{name}-{dist.version}.dist-info"
    files: dict[str, bytes] = {}
    for package in (dist.read_text("top_level.txt") or distribution).split():
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"{distribution}: its package {package!r} is not importable here")
        locations = [Path(p) for p in spec.submodule_search_locations]
        # A namespace package (hydra_plugins) has a portion in each tree that ships one: ours
        # is the one beside this distribution's own package.
        home = Path(next(iter(importlib.util.find_spec(distribution).submodule_search_locations)))
        root = next((p for p in locations if p.parent == home.parent), locations[0])
        for path in sorted(root.rglob("*")):
            relative = path.relative_to(root)
            if path.is_dir() or "__pycache__" in relative.parts or path.suffix in (".pyc", ".pyo"):
                continue
            files[f"{package}/{relative.as_posix()}"] = path.read_bytes()
    files[f"{info}/METADATA"] = _metadata(dist).encode()
    for meta in ("entry_points.txt", "top_level.txt"):
        text = dist.read_text(meta)
        if text is not None:
            files[f"{info}/{meta}"] = text.encode()
    files[f"{info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: bench ({__name__})\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n"
    ).encode()
    record = [f"{path},sha256={_digest(data)},{len(data)}" for path, data in files.items()]
    files[f"{info}/RECORD"] = "\n".join([*record, f"{info}/RECORD,,", ""]).encode()
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(f"{name}-*.whl"):
        stale.unlink()
    wheel = folder / f"{name}-{dist.version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            entry = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, data, zipfile.ZIP_DEFLATED)
    return wheel


def installed(distribution: str = DISTRIBUTION) -> metadata.Distribution:
    """The installed metadata that describes the code this process imports, among those on the
    path: the one beside that code (a wheel's `.dist-info` in its site-packages, the `.egg-info`
    setuptools leaves in a source tree), else a `.dist-info` whose `direct_url.json` names that
    tree (an editable install of it), else the first `.dist-info`. A checkout on PYTHONPATH
    over another tree's editable install so gets its own metadata, not the other tree's."""
    found = list(metadata.distributions(name=distribution))
    if not found:
        raise metadata.PackageNotFoundError(distribution)
    spec = importlib.util.find_spec(distribution)
    if spec is None or not spec.submodule_search_locations:
        root = None
    else:
        root = Path(next(iter(spec.submodule_search_locations))).resolve().parent

    def beside(dist: metadata.Distribution) -> bool:
        return root is not None and Path(str(dist.locate_file(""))).resolve() == root

    def names_root(dist: metadata.Distribution) -> bool:
        url = json.loads(dist.read_text("direct_url.json") or "{}").get("url")
        return root is not None and url == root.as_uri()

    def wheel_style(dist: metadata.Distribution) -> bool:
        return dist.read_text("METADATA") is not None

    for chosen in (beside, names_root, wheel_style):
        match = next((dist for dist in found if chosen(dist)), None)
        if match is not None:
            return match
    return found[0]


def _metadata(dist: metadata.Distribution) -> str:
    """The wheel's METADATA: the installed one, or an egg-info's PKG-INFO with the
    requirements of its requires.txt written in, as a wheel carries them."""
    text = dist.read_text("METADATA")
    if text is not None:
        return text
    text = dist.read_text("PKG-INFO") or ""
    head, _, body = text.partition("\n\n")
    if "\nRequires-Dist:" not in head:
        requirements = dist.requires or []
        extras = sorted(set(re.findall(r"extra == ['\"]([^'\"]+)['\"]", " ".join(requirements))))
        head += "".join(f"\nProvides-Extra: {extra}" for extra in extras)
        head += "".join(f"\nRequires-Dist: {requirement}" for requirement in requirements)
    return f"{head}\n\n{body}"


def _digest(data: bytes) -> str:
    """A wheel RECORD's hash: urlsafe base64 of the SHA-256, without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def serving_config(config: dict, threads: int | None, slo_ms: float | None = None) -> dict:
    """The worker's config in the image: the measured model, backend, optimization and serving
    (workers, batching), its cache inside the image, and `threads` intra-op threads (the pod's
    CPU limit: a runtime sizing its pool from the node's cores would be throttled); with
    `slo_ms`, the plan's SLO, where the worker cuts its latency buckets (so the plan's alerting
    rules find a bucket at the SLO, bench.monitoring)."""
    served = {group: copy.deepcopy(config[group]) for group in ("model", "backend", "optimization")}
    served["strategy"] = copy.deepcopy(config["strategy"])
    served["cache_dir"] = CACHE_DIR
    if threads is not None:
        served["backend"]["threads"] = threads
    if slo_ms is not None:
        served["plan"] = {"slo_ms": slo_ms}
    return served


def dockerfile(served: dict, torch: str, wheel: str) -> str:
    """The Dockerfile's text for a build context laid out by `write_image`; `torch` is the
    torch requirement ("torch==2.13.0"), installed from the CPU index; `wheel` the file name of
    this package's wheel in the context."""
    labels = " ".join(
        f"{group}={served[group]['name']}" for group in ("model", "backend", "optimization")
    )
    worker = [
        "python", "-m", "runners.worker", "--config", "/app/serving.yaml",
        "--protocol", "http", "--host", "0.0.0.0", "--port", str(PORT),
    ]  # fmt: skip
    probe = (
        "import urllib.request; "
        f"urllib.request.urlopen('http://127.0.0.1:{PORT}/v2/health/ready', timeout=2)"
    )
    return f"""\
# Generated by bench (bench/capacity/image.py) for {labels}.
# Build and push:  docker build -t IMAGE . && docker push IMAGE   (this folder is the context)
FROM {BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
# torch's CPU build first, from its own index; the pins below then leave it in place.
RUN pip install --index-url {TORCH_CPU_INDEX} {shlex.quote(torch)}
# What the serving worker imports (the package's `serve` extra), pinned to the versions measured.
COPY requirements.txt /app/requirements.txt
RUN pip install -r /app/requirements.txt
# This package, the code that was measured, without its dependencies (the harness's own).
COPY {wheel} /app/{wheel}
RUN pip install --no-deps /app/{wheel}
COPY serving.yaml /app/serving.yaml
RUN useradd --uid 10001 --create-home bench && mkdir {CACHE_DIR} && chown bench {CACHE_DIR}
USER 10001
# Build the predictor once now (an ONNX export, say), so a pod's cold start only loads it.
RUN python -c "from omegaconf import OmegaConf; from runners.serving import build_from_config; \\
build_from_config(OmegaConf.load('/app/serving.yaml'))"
EXPOSE {PORT}
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \\
    CMD {json.dumps(["python", "-c", probe])}
CMD {json.dumps(worker)}
"""


def write_image(
    folder: Path,
    config: dict,
    threads: int | None = None,
    slo_ms: float | None = None,
    harness: bool = False,
) -> Path:
    """Write a build context for `config` (a measured run's model, backend, optimization and
    strategy groups) into `folder`, for the plan's SLO `slo_ms`; return the Dockerfile's path.
    `harness`: the image installs every run-time requirement, so that it measures too (`python
    -m bench`, as a sweep's Kubernetes Jobs run it), not only the serving worker's."""
    folder.mkdir(parents=True, exist_ok=True)
    served = serving_config(config, threads, slo_ms)
    (folder / "serving.yaml").write_text(yaml.safe_dump(served, sort_keys=False))
    pins = pinned_requirements(extra=None if harness else SERVE_EXTRA)
    (folder / "requirements.txt").write_text("\n".join(pins) + "\n")
    wheel = distribution_wheel(folder)
    torch = next((pin for pin in pins if pin.startswith("torch==")), "torch")
    path = folder / "Dockerfile"
    path.write_text(dockerfile(served, torch, wheel.name))
    return path
