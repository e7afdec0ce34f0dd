"""The package as it installs: package data, the wheel packed for the serving image, and the
`serve` extra that the image installs, checked against what a real worker imports.

Building the wheel with pip and running it from a fresh venv is CI's `.ci/wheel_smoke`."""

from __future__ import annotations

import functools
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench.capacity.image import DISTRIBUTION, SERVE_EXTRA, distribution_wheel, installed
from runners.processes import free_port_run
from runners.remote import worker_config, worker_env
from runners.worker import ENTRY
from tests.conftest import ROOT, checkout_env, compose

PACKAGES = ("bench", "runners", "reports")
# Imported by a serving worker when installed, not required: the image runs without them.
OPTIONAL_IMPORTS = {
    "attrs": "omegaconf._utils imports attr inside a try, for attrs classes as configs",
    "charset-normalizer": "numpy.f2py.crackfortran imports it inside a try; it is installed "
    "wherever a test tool brings requests (papermill does)",
}


def _tracked(package: str) -> list[Path]:
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", package], capture_output=True, text=True, check=True
    ).stdout
    return [ROOT / line for line in listed.splitlines()]


def test_every_data_file_of_the_packages_is_package_data():
    """A file under bench/, runners/ or reports/ that is not Python ships only if pyproject's
    package-data names it: a YAML preset or template left out breaks the wheel, not the tests."""
    tomllib = pytest.importorskip("tomllib")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped: set[Path] = set()
    for package, patterns in declared["package-data"].items():
        folder = ROOT / package.replace(".", "/")
        for pattern in patterns:
            shipped |= set(folder.glob(pattern))
    data = [p for package in PACKAGES for p in _tracked(package) if p.suffix != ".py"]
    assert data, "no data files found: is this the checkout?"
    assert [str(p.relative_to(ROOT)) for p in data if p not in shipped] == []


def test_the_image_wheel_is_the_imported_code_and_installs(tmp_path):
    wheel = distribution_wheel(tmp_path / "context")
    assert wheel.name == f"bench-{metadata.version(DISTRIBUTION)}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA")).rsplit("/", 1)[0]
        assert archive.read("bench/cli.py") == (ROOT / "bench" / "cli.py").read_bytes()
        assert "bench = bench.cli:main" in archive.read(f"{info}/entry_points.txt").decode()
        record = archive.read(f"{info}/RECORD").decode().splitlines()
    assert len(record) == len(names) and not [n for n in names if "__pycache__" in n]
    # The same code gives the same bytes (an image rebuild reuses its layers).
    assert distribution_wheel(tmp_path / "again").read_bytes() == wheel.read_bytes()
    # pip takes it as a wheel (hashes, metadata, entry points), without a network.
    target = tmp_path / "installed"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
        + ["--target", str(target), str(wheel)],
        check=True,
        timeout=120,
    )
    assert (target / "bench" / "conf" / "catalog" / "data" / "servers.yaml").is_file()
    assert (target / "bench" / "conf" / "scenario" / "data" / "example_day.csv").is_file()
    assert (target / "runners" / "grpc_v2" / "inference.proto").is_file()


def _requirements(distribution: str, extra: str = "") -> list[Requirement]:
    dist = installed() if distribution == DISTRIBUTION else metadata.distribution(distribution)
    chosen = []
    for text in dist.requires or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
            chosen.append(requirement)
    return chosen


def _installed_closure(requirements: list[Requirement]) -> set[str]:
    """The distributions these requirements pull in, as installed here."""
    seen: set[str] = set()
    todo = list(requirements)
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += _requirements(name)
            for extra in requirement.extras:
                todo += _requirements(name, extra)
        except metadata.PackageNotFoundError:
            continue
    return seen


def _serve_extra() -> list[Requirement]:
    base = {str(r) for r in _requirements(DISTRIBUTION)}
    return [r for r in _requirements(DISTRIBUTION, SERVE_EXTRA) if str(r) not in base]


def test_the_serve_extra_is_declared_and_is_a_part_of_the_dependencies():
    serve = {canonicalize_name(r.name) for r in _serve_extra()}
    if not serve:
        pytest.fail(f"the installed metadata of {DISTRIBUTION} has no {SERVE_EXTRA!r} extra")
    base = {canonicalize_name(r.name) for r in _requirements(DISTRIBUTION)}
    assert serve <= base  # the harness runs what it serves
    assert not serve & {"pandas", "pyarrow", "hdrhistogram", "aiohttp", "jinja2", "pytest"}


_OWNERS = """
import json, importlib.metadata as m
top = m.packages_distributions()
sub = {}
for dist in m.distributions():
    for file in dist.files or []:
        parts = file.parts
        if len(parts) > 2 and len(top.get(parts[0], ())) > 1:
            name = parts[0] + "." + parts[1].removesuffix(".py")
            sub.setdefault(name, set()).add(dist.metadata["Name"])
print(json.dumps({"top": top, "sub": {name: sorted(d) for name, d in sub.items()}}))
"""


@functools.cache
def _owners() -> Callable[[str], list[str]]:
    """Module -> the distributions that install it, as a fresh interpreter sees them (this
    process's may also see copies vendored inside a package: importing setuptools puts its
    _vendor folder, backports.tarfile and all, on sys.path). By top-level name, except in a
    namespace package several distributions share (`google`: protobuf, and Ray's
    google-api-core), where the name below it says which (`google.protobuf`)."""
    found = subprocess.run(
        [sys.executable, "-c", _OWNERS],
        env=checkout_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    tables = json.loads(found.stdout)
    top, sub = tables["top"], tables["sub"]

    def owners(module: str) -> list[str]:
        parts = module.split(".")
        if len(top.get(parts[0], ())) > 1:  # the namespace alone is no distribution's code
            return sub.get(".".join(parts[:2]), top[parts[0]]) if len(parts) > 1 else []
        return top.get(parts[0], [])

    return owners


def _worker_imports(tmp_path: Path, overrides: list[str], protocol: str) -> set[str]:
    """The modules (two levels: `google.protobuf`) a real worker process imported, up to serving
    its first request (`python -X importtime` lists each module at its first import)."""
    config = tmp_path / f"{protocol}.yaml"
    config.write_text(worker_config(compose(overrides), 1))
    port = free_port_run("127.0.0.1", 1)
    argv = [sys.executable, "-X", "importtime", "-c", ENTRY, "--config", str(config)]
    argv += ["--protocol", protocol, "--port", str(port), "--watch-stdin"]
    log = tmp_path / f"{protocol}.log"
    with log.open("w") as stderr:
        worker = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stderr=stderr, cwd=tmp_path, env=worker_env()
        )
        try:
            deadline = time.monotonic() + 180
            while True:
                assert worker.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "the worker did not listen in 180 s"
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.2)
            if protocol == "http":
                url = f"http://127.0.0.1:{port}/v2/health/ready"
                assert urllib.request.urlopen(url, timeout=10).status == 200
        finally:
            worker.stdin.close()
            worker.wait(timeout=60)
    found = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)", log.read_text(), re.M)
    return {".".join(name.split(".")[:2]) for name in found}


@pytest.mark.parametrize(
    "overrides, protocol",
    [
        (["model=mlp", "backend=torch"], "http"),
        (["model=mlp", "backend=onnxruntime"], "grpc"),
        pytest.param(["model=minilm", "backend=torch"], "http", marks=pytest.mark.slow),
        pytest.param(["model=efficientnet_lite0", "backend=torch"], "grpc", marks=pytest.mark.slow),
    ],
    ids=["mlp-torch-http", "mlp-onnxruntime-grpc", "minilm-torch-http", "efficientnet-torch-grpc"],
)
def test_a_serving_worker_imports_only_what_the_serve_extra_installs(
    tmp_path, cache_dir, overrides, protocol
):
    modules = _worker_imports(tmp_path, [*overrides, f"cache_dir={cache_dir}"], protocol)
    owners = _owners()
    imported = {canonicalize_name(d) for m in modules for d in owners(m)}
    allowed = _installed_closure(_serve_extra()) | {DISTRIBUTION, *OPTIONAL_IMPORTS}
    assert imported, "no imports read: was the worker run with -X importtime?"
    assert sorted(imported - allowed) == []


def test_python_dash_m_bench_help_is_the_generated_one(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--help"],
        cwd=tmp_path,
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: bench ")
    assert "powered by Hydra" not in proc.stdout and "--hydra-help" in proc.stdout
