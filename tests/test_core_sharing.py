"""The model's own core sharing (bench.backends.core_sharing): measured by copies of the model
in processes of their own, remembered per host, pinned where the user says, and stored in the
rows the planner sizes from."""

from __future__ import annotations

import math

import pytest

from bench import results
from bench.backends.core_sharing import model_core_sharing
from bench.backends.threads import available_cores
from bench.capacity.measured import measured_configs
from bench.config import ConfigError, validate
from bench.run import run_benchmark
from tests.conftest import compose

needs_two_cores = pytest.mark.skipif(available_cores() < 2, reason="one core: no core to share")


@needs_two_cores
def test_copies_of_the_model_measure_it_and_the_host_remembers_it(tmp_path):
    cfg = compose(["model=mlp", "backend.threads=1", "core_sharing=null", f"cache_dir={tmp_path}"])
    first = model_core_sharing(cfg, threads=1, model_bytes=0)
    assert 0 < first["model_core_sharing"] <= 1
    how = first["model_core_sharing_how"]
    assert how.startswith(f"measured: {available_cores()} processes of 1 thread(s)"), how
    assert "round ratios" in how
    again = model_core_sharing(cfg, threads=1, model_bytes=0)
    assert again["model_core_sharing"] == first["model_core_sharing"]
    remembered = again["model_core_sharing_how"]
    assert remembered == f"remembered from an earlier probe on this host: {how}"


@needs_two_cores
def test_a_copy_that_cannot_build_the_model_says_why_and_nothing_is_remembered(tmp_path):
    cfg = compose(
        [
            "model=python",
            "model.target=no_such_module_here:build",
            "backend.threads=1",
            "core_sharing=null",
            f"cache_dir={tmp_path}",
        ]
    )
    found = model_core_sharing(cfg, threads=1, model_bytes=0)
    assert math.isnan(found["model_core_sharing"])
    assert found["model_core_sharing_how"].startswith("not measured: a copy failed"), found
    assert "no_such_module_here" in found["model_core_sharing_how"]
    assert not list((tmp_path / "core_sharing").glob("*"))


def test_where_one_copy_fills_the_cores_or_memory_or_the_user_pins_it_nothing_is_started(
    tmp_path,
):
    cfg = compose(["model=mlp", "core_sharing=null", f"cache_dir={tmp_path}"])
    filled = model_core_sharing(cfg, threads=available_cores(), model_bytes=0)
    assert math.isnan(filled["model_core_sharing"])
    assert "fills the" in filled["model_core_sharing_how"]
    pinned = model_core_sharing(
        compose(["model=mlp", "core_sharing=0.9"]), threads=1, model_bytes=0
    )
    assert pinned["model_core_sharing"] == 0.9
    assert pinned["model_core_sharing_how"] == "pinned: core_sharing=0.9"
    too_big = model_core_sharing(cfg, threads=1, model_bytes=2**60)
    assert math.isnan(too_big["model_core_sharing"])
    assert "need more memory than the" in too_big["model_core_sharing_how"]
    assert not (tmp_path / "core_sharing").exists()
    with pytest.raises(ConfigError, match="core_sharing"):
        validate(compose(["model=mlp", "core_sharing=1.5"]))


@needs_two_cores
def test_a_run_stores_the_figure_and_the_planner_sizes_with_it(tmp_path, cache_dir):
    run_benchmark(
        compose(
            [
                "model=mlp",
                "backend.threads=1",
                "core_sharing=null",
                "progress=false",
                "accuracy_samples=0",
                "scenario=concurrency",
                "scenario.levels=[1]",
                "scenario.warmup_s=0.2",
                "scenario.duration_s=2",
                "scenario.min_duration_s=1",
                f"cache_dir={cache_dir}",
            ]
        ),
        tmp_path,
    )
    rows = results.load(tmp_path)
    assert rows["valid"].all(), rows["invalid_reasons"].tolist()
    figure = rows["model_core_sharing"].iloc[0]
    assert 0 < figure <= 1
    assert rows["model_core_sharing_how"].iloc[0].startswith(("measured", "remembered"))
    (config,) = measured_configs(rows, host_cores=available_cores())
    assert config.core_sharing == figure
