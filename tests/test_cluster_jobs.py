"""The sweep as Kubernetes Jobs, and the shards both cluster engines gather: the manifests
checked against the Kubernetes API's own schemas (kubernetes-validate, strict: an unknown
field fails), an index of a Job run for real (its `python -m bench`), its shard merged into a
sweep folder that `bench.results.load` reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from bench import results
from bench.capacity.manifests import Deployment, manifests
from bench.cluster.shards import pack, unpack
from tests.conftest import checkout_env

KUBERNETES = kubernetes_validate.latest_version()


def _valid(manifest: dict) -> None:
    kubernetes_validate.validate(manifest, KUBERNETES, strict=True)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """`bench -m hydra/launcher=k8s_jobs` over two tiers: the sweep folder it wrote."""
    sweep = tmp_path_factory.mktemp("k8s")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "-m", "hydra/launcher=k8s_jobs", "tier=big-pool,small"]
        + ["model=busy", "model.service_ms=1,2", f"hydra.sweep.dir={sweep}"],
        env=checkout_env(),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=sweep,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"kubernetes: {sweep / 'kubernetes'} (4 configurations" in proc.stdout
    return sweep


def test_the_sweep_jobs_validate_against_the_kubernetes_schemas(exported):
    folder = exported / "kubernetes"
    written = {p.name: yaml.safe_load(p.read_text()) for p in folder.glob("*.yaml")}
    assert set(written) == {
        "pvc.yaml",
        "configurations.yaml",
        "job-big-pool.yaml",
        "job-small.yaml",
    }
    for manifest in written.values():
        _valid(manifest)
    job = written["job-small.yaml"]
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 2
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"bench/tier": "small"}
    # Each index's configuration, as the pod reads it from the ConfigMap.
    shares = json.loads(written["configurations.yaml"]["data"]["small.json"])
    assert [s["overrides"] for s in shares] == [
        ["tier=small", "model=busy", "model.service_ms=1"],
        ["tier=small", "model=busy", "model.service_ms=2"],
    ]
    # The harness's image: its build context, installing what `python -m bench` imports.
    requirements = (folder / "image" / "requirements.txt").read_text()
    assert "pandas==" in requirements and "hydra-core==" in requirements
    assert (folder / "image" / "Dockerfile").is_file()


# A generating server's: scaled on requests in flight per pod, OpenAI's paths routed unbuffered.
GENERATING = {"target_cpu_pct": None, "target_in_flight": 2.5, "generates": True}


@pytest.mark.parametrize("scaling", [{"target_cpu_pct": 60}, GENERATING], ids=["cpu", "in-flight"])
def test_the_planners_manifests_validate_against_the_kubernetes_schemas(scaling):
    deployment = Deployment(
        name="minilm-torch",
        image="registry.example.com/minilm",
        replicas=3,
        min_replicas=2,
        max_replicas=6,
        cpu_per_replica=2,
        rss_mb_per_replica=612.4,
        node_selector={"node.kubernetes.io/instance-type": "c7a.xlarge"},
        model_sha256="ab" * 32,
        model_artifact="minilm.onnx",
        **scaling,
    )
    files = manifests(deployment)
    kinds = {m["kind"] for m in files.values()}
    assert {"Deployment", "Service", "Ingress", "HorizontalPodAutoscaler"} <= kinds
    for manifest in files.values():
        _valid(manifest)


def test_a_setting_out_of_range_is_refused_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "-m", "hydra/launcher=k8s_jobs", "model=busy"]
        + ["hydra.launcher.parallelism=0", f"hydra.sweep.dir={tmp_path}"],
        env=checkout_env(), capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "bench: error: hydra.launcher.parallelism: must be >= 1, got 0" in proc.stderr
    assert not (tmp_path / "kubernetes").exists()


def test_the_schemas_reject_a_field_kubernetes_does_not_know():
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "x"},
        "spec": {"completionMod": "Indexed", "template": {"spec": {"containers": []}}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        _valid(job)


def test_an_index_measures_its_configuration_and_merge_gathers_its_shard(tmp_path, cache_dir):
    tiny = ["model=busy", "scenario.levels=[1,2]", "scenario.warmup_s=0.2"]
    tiny += ["scenario.duration_s=0.4", "accuracy_samples=0", "progress=false"]
    tiny += ["plan.enabled=false", "report=false", f"cache_dir={cache_dir}"]
    shares = tmp_path / "small.json"
    shares.write_text(json.dumps([{"num": 5, "overrides": ["tier=small", *tiny]}]))
    shards, sweep = tmp_path / "shards", tmp_path / "sweep"
    env = {**checkout_env(), "JOB_COMPLETION_INDEX": "0", "NODE_NAME": "pool-small-node-1"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.cluster.job_index", str(shares), str(shards)],
        env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (shards / "5" / "node.log").is_file()
    merged = subprocess.run(
        [sys.executable, "-m", "bench.cluster.merge", str(shards), str(sweep)],
        env=checkout_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert merged.returncode == 0, merged.stderr
    assert f"bench-report {sweep}" in merged.stdout
    rows = results.load(sweep)
    assert list(rows["label"]) == ["concurrency 1", "concurrency 2"]
    assert (rows["node"] == "pool-small-node-1").all() and (rows["tier"] == "small").all()
    assert len(list((sweep / "5" / "requests").glob("*.parquet"))) == 2


def test_a_shard_round_trips_and_cannot_write_outside_its_folder(tmp_path):
    source = tmp_path / "run"
    (source / "requests").mkdir(parents=True)
    (source / "results.parquet").write_bytes(b"rows")
    (source / "requests" / "p1.parquet").write_bytes(b"requests")
    (source / ".results.parquet.123.tmp").write_bytes(b"half written")
    shard = pack(source)
    assert shard == {"requests/p1.parquet": b"requests", "results.parquet": b"rows"}
    target = unpack(shard, tmp_path / "gathered")
    assert pack(target) == shard
    for name in ("../escape", "/etc/passwd"):
        with pytest.raises(ValueError, match="not a path inside the shard"):
            unpack({name: b"x"}, tmp_path / "gathered")
    assert not (tmp_path / "escape").exists()
