"""The response cache (`strategy.cache`) and workloads with repeats (`scenario.repeat_ratio`,
`scenario.distinct`, `scenario.zipf_s`): the LRU's bounds, what makes two requests the same, the
hit ratio a workload sets, real workers answering repeats from the cache, and the planner's
sizing with it."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pandas as pd
import pytest

from bench.backends import build_predictor
from bench.capacity.catalog import load_catalog
from bench.capacity.measured import MeasuredConfig, measured_configs
from bench.capacity.planner import Target, recommend, recommendation_sentence, sizing_table
from bench.config import validate
from bench.load import Driver, LoadPoint, summarize
from bench.load.payloads import (
    PayloadIds,
    Payloads,
    Repeats,
    distinct_supply,
    payload_key,
    repeated,
)
from bench.models import build_model
from bench.results import ResultsStore
from bench.run import run_benchmark
from bench.validation import ConfigError
from runners import Request, build_runner
from runners.cache import ResponseCache
from runners.direct import DirectRunner
from runners.protocol import InferRequest, decode_request, encode_request, items_to_tensors
from tests.conftest import LENIENT, compose
from tests.synthetic import SleepPredictor, direct_cfg

# --- the cache and its key -------------------------------------------------------------------


def test_the_lru_keeps_the_most_recently_used_within_its_bound():
    cache = ResponseCache(max_entries=2)
    a, b, c = (payload_key([name]) for name in "abc")
    out = np.arange(4, dtype=np.float32)
    cache.put(a, out)
    cache.put(b, out * 2)
    assert cache.get(a) is not None  # a is now the most recently used
    cache.put(c, out * 3)  # so b goes
    assert cache.get(b) is None and cache.entries == 2
    np.testing.assert_array_equal(cache.get(c), out * 3)
    assert (cache.hits, cache.misses) == (2, 1)
    assert cache.bytes == 2 * (out.nbytes + 16)

    by_size = ResponseCache(max_mb=100 / 1e6)  # 100 bytes: three 32-byte entries
    for i in range(5):
        by_size.put(payload_key([i]), out)
    assert by_size.entries == 3 and by_size.bytes == 96
    by_size.put(payload_key(["huge"]), np.zeros(100, np.float32))  # larger than the cache
    assert by_size.get(payload_key(["huge"])) is None and by_size.entries == 3
    # What a hit returns cannot be changed by the caller that got it.
    with pytest.raises(ValueError):
        by_size.get(payload_key([4]))[0] = 1


def test_the_key_is_the_decoded_inputs_however_they_travelled():
    vector = np.linspace(-1, 1, 8, dtype=np.float32)
    decoded = []
    for binary in (True, False):
        body, headers = encode_request(InferRequest(items_to_tensors([vector])), binary=binary)
        length = headers.get("Inference-Header-Content-Length")
        tensors = decode_request(body, length).inputs
        decoded.append(tensors[0].data)
    assert payload_key(decoded[0]) == payload_key(decoded[1]) == payload_key([vector])
    assert payload_key([vector[::-1].copy()[::-1]]) == payload_key([vector])  # layout aside
    big_endian = vector.astype(">f4")
    assert payload_key([big_endian]) == payload_key([vector])
    # Same bytes, another meaning: never the same request.
    assert payload_key([vector.view(np.int32)]) != payload_key([vector])
    assert payload_key([vector.reshape(2, 4)]) != payload_key([vector])
    assert payload_key(["ab"]) != payload_key([b"ab"]) != payload_key(["a", "b"])
    assert payload_key(["a", "b"]) != payload_key(["b", "a"])


def test_cache_and_workload_settings_are_checked_naming_the_field():
    cases = [
        (
            ["strategy.cache.max_entries=0", "scenario.repeat_ratio=0.5"],
            "strategy.cache.max_entries",
        ),
        (
            [
                "strategy.cache.max_entries=10",
                "strategy.cache.max_mb=1",
                "scenario.repeat_ratio=0.5",
            ],
            "strategy.cache.max_mb",
        ),
        (["strategy.cache.max_entries=10"], "strategy.cache: a response cache needs a workload"),
        (["scenario.repeat_ratio=1"], "scenario.repeat_ratio: must be at least 0 and below 1"),
        (["scenario.repeat_ratio=0.5", "scenario.distinct=10"], "scenario.repeat_ratio: give"),
        (["scenario.zipf_s=1.1"], "scenario.zipf_s: a Zipf popularity needs the pool"),
        (["scenario.distinct=0"], "scenario.distinct: must be >= 1"),
    ]
    for overrides, message in cases:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
            validate(compose(overrides))
    validate(compose(["strategy=grpc", "strategy.cache.max_mb=8", "scenario.distinct=100"]))


# --- workloads with repeats --------------------------------------------------------------------


def test_repeat_and_zipf_workloads_give_the_hit_ratio_they_set():
    n = 4000
    ids = PayloadIds(Repeats(repeat_ratio=0.5), seed=3)(n)
    share = repeated(ids).mean()
    assert abs(share - 0.5) < 3 * math.sqrt(0.25 / n)  # binomial, three standard errors
    # Seeded and drawn in blocks: the same ids however they are asked for.
    lazy = PayloadIds(Repeats(repeat_ratio=0.5), seed=3)
    lazy(5)
    np.testing.assert_array_equal(lazy(n), ids)
    assert int(repeated(ids).sum()) == int(repeated(lazy(n)).sum())
    assert not np.array_equal(PayloadIds(Repeats(repeat_ratio=0.5), seed=4)(n), ids)

    # Zipf over D payloads: a request repeats unless its payload is drawn for the first time;
    # E[distinct seen in n] = sum over k of 1 - (1 - p_k)^n.
    distinct, s = 2000, 1.0
    p = np.arange(1, distinct + 1, dtype=float) ** -s
    p /= p.sum()
    expected = 1 - np.sum(1 - (1 - p) ** n) / n
    drawn = repeated(PayloadIds(Repeats(distinct=distinct, zipf_s=s), seed=0)(n)).mean()
    assert abs(drawn - expected) < 0.02
    uniform = repeated(PayloadIds(Repeats(distinct=50), seed=0)(n)).mean()
    assert uniform == 1 - 50 / n  # every one of 50 payloads is drawn within 4000 requests


def test_each_points_distinct_payloads_are_its_own():
    """Payloads are drawn per point (a salt of the point): a cache kept from one point must not
    answer the next point's fresh payloads, MiniLM's text included."""
    from bench.config.model import MiniLMConfig

    for bundle in (build_model(MiniLMConfig()), SleepPredictor(0).bundle):
        keys = []
        for salt in (1, 2):
            make = distinct_supply(bundle.distinct_source(), 1, seed=0, salt=salt)
            keys.append({payload_key(make(k)) for k in range(1500)})
        assert len(keys[0]) == len(keys[1]) == 1500
        assert not keys[0] & keys[1]


def test_a_direct_cache_answers_exactly_the_workloads_repeats():
    """Closed loop, one request at a time and a cache that never fills: every repeat is a hit,
    every first sending a miss, counted request by request."""
    predictor = SleepPredictor(0.0005)
    cfg = direct_cfg()
    cfg.strategy.cache.max_entries = 100_000
    point = LoadPoint(
        "concurrency", 1, warmup_s=0.3, duration_s=1.5, schedule_seed=0, concurrency=1
    )
    payloads = Payloads(
        PayloadIds(Repeats(repeat_ratio=0.7), seed=1),
        lambda k: predictor.bundle.samples(1, 10_000 + k),
    )

    async def main():
        runner = DirectRunner.from_predictor(cfg, predictor)
        await runner.start()
        try:
            return await Driver(runner, payloads).run(point), runner.facts
        finally:
            await runner.stop()

    measurement, facts = asyncio.run(main())
    log = measurement.log.columns()
    ids = payloads.ids(len(log["ok"]))
    assert log["ok"].all()
    np.testing.assert_array_equal(log["cache_hit"] == 1, repeated(ids))
    stats = summarize(measurement, 3, 1e-3, 1)
    assert 0.6 < stats["cache_hit_ratio"] < 0.8
    assert stats["cache_hit_latency_p50_ms"] < stats["cache_miss_latency_p50_ms"]
    assert facts.strategy_facts["cache_entries"] == len(np.unique(ids))


# --- real workers ------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["http", "grpc"])
def test_a_worker_answers_repeats_from_its_cache_as_the_model_would(strategy, cache_dir):
    cfg = compose(
        ["model=mlp", f"strategy={strategy}", "strategy.cache.max_entries=8",
         f"cache_dir={cache_dir}"]
    )  # fmt: skip
    bundle = build_model(cfg.model)
    samples = bundle.samples(3, 21)
    reference = build_predictor(bundle, cfg.backend, cfg.optimization, cache_dir).predict(samples)

    async def main():
        runner = build_runner(cfg)
        await runner.start()
        try:
            first = [await runner.infer(Request(i, [s])) for i, s in enumerate(samples)]
            again = [await runner.infer(Request(9 + i, [s])) for i, s in enumerate(samples)]
            stats = await runner._worker_facts(runner.addresses[0])
            return first, again, runner.facts.as_row(), stats
        finally:
            await runner.stop()

    first, again, row, _ = asyncio.run(main())
    assert [r.cache_hit for r in first] == [False] * 3
    assert [r.cache_hit for r in again] == [True] * 3
    for miss, hit, expected in zip(first, again, reference, strict=True):
        np.testing.assert_array_equal(hit.output, miss.output)
        np.testing.assert_allclose(miss.output[0], expected, rtol=1e-5, atol=1e-6)
    # The start-up request over the wire was a sample too: at least our three are held.
    assert row["cache_entries"] >= 3 and row["cache_mb"] > 0


def test_a_run_over_http_records_the_hit_ratio_and_hit_and_miss_latency(tmp_path, cache_dir):
    cfg = compose(
        [
            "model=mlp",
            "strategy=http",
            "strategy.cache.max_entries=10000",
            "scenario=server",
            "scenario.target_qps=150",
            "scenario.repeat_ratio=0.6",
            "scenario.warmup_s=0.5",
            "scenario.duration_s=2",
            f"cache_dir={cache_dir}",
            "progress=false",
            *LENIENT,
        ]
    )
    row = run_benchmark(cfg, tmp_path).iloc[0]
    from reports import build_report

    html = build_report(tmp_path).read_text()
    assert "Response cache: hits and misses" in html and ">cache hits<" in html
    assert row["status"] == "measured"
    assert 0.3 < row["cache_hit_ratio"] <= row["workload_repeat_share"] + 1e-9
    assert 0.45 < row["workload_repeat_share"] < 0.75
    for kind in ("hit", "miss"):
        assert row[f"cache_{kind}_latency_p50_ms"] <= row[f"cache_{kind}_latency_p99_ms"]
    assert row["cache_entries"] > 0 and row["cache_mb"] > 0
    log = pd.read_parquet(tmp_path / "requests" / f"{row['point_id']}.parquet")
    assert set(np.unique(log.loc[log["ok"], "cache_hit"])) == {0.0, 1.0}


# --- the planner -------------------------------------------------------------------------------


HOST = {
    "host_cpu_model": "Test CPU",
    "host_isa": "avx2,fma,avx512f,avx512_vnni,avx512_bf16",
    "host_cores": 8,
    "calib_fp32_gflops_per_thread": 100.0,
    "calib_bf16_gflops_per_thread": 200.0,
    "calib_int8_gops_per_thread": 400.0,
    "calib_mem_bandwidth_gbs": 20.0,
    "calib_spread": 0.05,
}
CONFIG = {
    "model": {"name": "mlp"},
    "backend": {"name": "onnxruntime", "threads": 2},
    "optimization": {"name": "none"},
    "strategy": {"name": "direct", "cache": {"max_entries": 1000, "max_mb": None}},
    "scenario": {"name": "server"},
}


def _stored(folder, hit_ratio: float, n: int = 2000):
    """One valid open-loop point, its request log: misses of 10 ms, hits of 0.05 ms."""
    import json

    rng = np.random.default_rng(0)
    hit = (rng.random(n) < hit_ratio).astype(float)
    service = np.where(hit == 1, rng.gamma(20, 0.05e-3 / 20, n), rng.gamma(20, 10e-3 / 20, n))
    row = {
        "schema_version": 1, "run_id": "r", "point_id": "p", "label": "server 50 qps",
        "status": "measured", "model": "mlp", "backend": "onnxruntime", "optimization": "none",
        "strategy": "direct", "scenario": "server", "concurrency": np.nan, "target_qps": 50.0,
        "achieved_qps": 49.8,
        "valid": True, "invalid_reasons": "", "rss_peak_mb": 400.0, "workers": 1,
        "config": json.dumps(CONFIG, sort_keys=True), **HOST,
    }  # fmt: skip
    ResultsStore(folder).append(
        row, {"compute_s": service, "ok": np.ones(n, bool), "cache_hit": hit}
    )
    from bench.results import load

    return load(folder)


def test_the_planner_sizes_with_the_measured_hit_ratio_and_says_what_the_cache_saved(tmp_path):
    configs = measured_configs(_stored(tmp_path, hit_ratio=0.8), host_cores=8)
    (measured,) = configs
    assert measured.label.endswith("+ cache 1000 entries")
    assert abs(measured.cache_hit_ratio - 0.8) < 0.03
    assert len(measured.hit_service_s) + len(measured.miss_service_s) == 2000
    # What the simulation replays holds hits and misses in that proportion.
    replayed_hits = np.mean(measured.service_s < 1e-3)
    assert abs(replayed_hits - measured.cache_hit_ratio) < 0.01

    target = Target(peak_qps=1000.0, percentile="p99", slo_ms=50.0, headroom=0.3)
    sizing = sizing_table(configs, load_catalog(), HOST, target)
    sized = sizing[sizing["servers"].notna()]
    assert not sized.empty
    assert (sized["cache_hit_ratio"] == measured.cache_hit_ratio).all()
    # Without the cache: the misses alone, a hit ratio of 0.
    uncached = MeasuredConfig(**{**measured.__dict__, "service_s": measured.miss_service_s})
    alone = sizing_table([uncached], load_catalog(), HOST, target).set_index("server_id")
    for _, row in sized.iterrows():
        assert row["servers_without_cache"] == alone.loc[row["server_id"], "servers"]
        assert row["cache_saved_servers"] == row["servers_without_cache"] - row["servers"]
    assert (sized["cache_saved_servers"] > 0).any()
    best = recommend(sizing)
    sentence = recommendation_sentence(best, target, "mlp")
    saved = int(best["cache_saved_servers"])
    assert f"Its response cache answered {measured.cache_hit_ratio:.0%} of requests" in sentence
    assert f"saves {saved} server" in sentence
