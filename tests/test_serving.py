"""The serving core's parts without sockets: the dynamic batcher with a fake model, the Open
Inference Protocol's encodings both ways, and `direct` with dynamic batching."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest
from omegaconf import OmegaConf

from bench.config import validate
from bench.config.strategy import BatchingConfig
from bench.load import Driver, LoadPoint
from bench.validation import ConfigError
from runners import grpc_codec
from runners.batching import DynamicBatcher, Executed
from runners.direct import DirectRunner
from runners.protocol import (
    InferRequest,
    InferResponse,
    ItemCodec,
    ProtocolError,
    Tensor,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    items_to_tensors,
)
from tests.conftest import compose
from tests.synthetic import SleepPredictor, direct_cfg

# --- the dynamic batcher ---------------------------------------------------------------------


class FakeModel:
    """Doubles its inputs after `service_s`, recording the size of every call."""

    def __init__(self, service_s: float = 0.01, fail_on: int | None = None) -> None:
        self.service_s = service_s
        self.fail_on = fail_on
        self.calls: list[int] = []

    async def __call__(self, items: list) -> Executed:
        began = time.perf_counter()
        self.calls.append(len(items))
        await asyncio.sleep(self.service_s)
        if self.fail_on is not None and self.fail_on in items:
            raise RuntimeError("model failed")
        return Executed(np.asarray(items) * 2, began, time.perf_counter() - began)


def batched(model: FakeModel, requests: list[list[int]], **kwargs) -> list:
    """Submit every request at once; return what each got back, in order."""

    async def main():
        batcher = DynamicBatcher(model, **kwargs)
        batcher.start()
        try:
            return await asyncio.gather(
                *(batcher.submit(items) for items in requests), return_exceptions=True
            )
        finally:
            await batcher.stop()

    return asyncio.run(main())


def test_concurrent_requests_share_batches_and_get_their_own_outputs():
    model = FakeModel()
    requests = [[i] for i in range(10)]
    results = batched(model, requests, max_batch_size=4, max_queue_delay_s=0.005)
    assert model.calls == [4, 4, 2]
    for items, served in zip(requests, results, strict=True):
        np.testing.assert_array_equal(served.output, np.asarray(items) * 2)
    assert [r.batch_size for r in results] == [4] * 8 + [2] * 2
    assert [r.batch_requests for r in results] == [4] * 8 + [2] * 2
    # Later batches waited for the earlier ones: queue time grows batch by batch.
    assert results[9].queue_s > results[0].queue_s + 0.015


def test_a_full_batch_goes_at_once_and_a_lone_request_waits_the_delay():
    model = FakeModel(service_s=0)
    began = time.perf_counter()
    full = batched(model, [[1], [2]], max_batch_size=2, max_queue_delay_s=2.0)
    assert time.perf_counter() - began < 1.0 and full[0].batch_size == 2
    lone = batched(FakeModel(service_s=0), [[1]], max_batch_size=8, max_queue_delay_s=0.05)
    assert 0.045 <= lone[0].queue_s < 0.5


def test_requests_are_never_split_and_an_oversized_one_runs_alone():
    model = FakeModel()
    results = batched(model, [[1, 2, 3], [4, 5, 6], [7] * 9], max_batch_size=4, max_queue_delay_s=0)
    assert model.calls == [3, 3, 9]
    np.testing.assert_array_equal(results[1].output, [8, 10, 12])


def test_a_failed_batch_fails_its_requests_and_the_batcher_goes_on():
    model = FakeModel(fail_on=3)

    async def main():
        batcher = DynamicBatcher(model, max_batch_size=2, max_queue_delay_s=0.001)
        batcher.start()
        try:
            failed = await asyncio.gather(
                batcher.submit([3]), batcher.submit([4]), return_exceptions=True
            )
            return failed, await batcher.submit([5])
        finally:
            await batcher.stop()

    failed, after = asyncio.run(main())
    assert all(isinstance(f, RuntimeError) for f in failed)
    np.testing.assert_array_equal(after.output, [10])


def test_a_cancelled_request_is_left_out_of_its_batch():
    model = FakeModel()

    async def main():
        batcher = DynamicBatcher(model, max_batch_size=4, max_queue_delay_s=0.05)
        batcher.start()
        try:
            gone = asyncio.create_task(batcher.submit([1]))
            await asyncio.sleep(0.005)
            gone.cancel()
            return await asyncio.gather(batcher.submit([2]), batcher.submit([3]))
        finally:
            await batcher.stop()

    results = asyncio.run(main())
    assert model.calls == [2] and results[0].batch_requests == 2


# --- the protocol ----------------------------------------------------------------------------


def _request() -> InferRequest:
    return InferRequest(
        inputs=[
            Tensor.from_array("x", np.arange(12, dtype=np.float32).reshape(3, 4) / 7),
            Tensor.from_array("ids", np.array([[1, -2], [3, 2**40]], dtype=np.int64)),
            Tensor("text", "BYTES", (2,), ["héllo".encode(), b""], {"content_type": "str"}),
            Tensor("raw", "BYTES", (1, 2), [b"\x00\xff\x10", b"jpeg"]),
            Tensor.from_array("flags", np.array([True, False])),
        ],
        id="r1",
        parameters={"priority": 3},
        binary_output=True,
    )


def _assert_same_tensors(got: list[Tensor], want: list[Tensor]) -> None:
    assert [(t.name, t.datatype, t.shape, t.parameters) for t in got] == [
        (t.name, t.datatype, t.shape, t.parameters) for t in want
    ]
    for g, w in zip(got, want, strict=True):
        if w.datatype == "BYTES":
            assert g.data == w.data
        else:
            np.testing.assert_array_equal(g.data, w.data)
            assert g.data.dtype == w.data.dtype


@pytest.mark.parametrize("binary", [False, True])
def test_requests_and_responses_round_trip_as_json_and_binary(binary):
    request = _request()
    body, headers = encode_request(request, binary)
    assert ("Inference-Header-Content-Length" in headers) == binary
    decoded = decode_request(body, headers.get("Inference-Header-Content-Length"))
    _assert_same_tensors(decoded.inputs, request.inputs)
    assert decoded.id == "r1" and decoded.binary_output
    assert decoded.parameters["priority"] == 3

    response = InferResponse("m", request.inputs, "r1", "1", {"queue_s": 0.25, "batch_size": 4})
    body, headers = encode_response(response, binary)
    back = decode_response(body, headers.get("Inference-Header-Content-Length"))
    _assert_same_tensors(back.outputs, response.outputs)
    assert (back.model_name, back.model_version, back.parameters) == (
        "m",
        "1",
        {"queue_s": 0.25, "batch_size": 4},
    )


def test_json_carries_text_as_strings_and_bytes_as_base64():
    body, _ = encode_request(_request(), binary=False)
    inputs = {t["name"]: t for t in json.loads(body)["inputs"]}
    assert inputs["text"]["data"] == ["héllo", ""]
    assert inputs["raw"]["parameters"] == {"content_type": "base64"}
    assert inputs["x"]["data"][:2] == [0.0, pytest.approx(1 / 7)]


def test_grpc_messages_round_trip_and_typed_contents_are_read():
    request = _request()
    decoded = grpc_codec.request_from_message(grpc_codec.request_message("m", request))
    _assert_same_tensors(decoded.inputs, request.inputs)
    assert decoded.parameters == {"priority": 3}
    response = InferResponse("m", request.inputs, "r1", "1", {"queue_s": 0.25, "ok": True})
    back = grpc_codec.response_from_message(grpc_codec.response_message(response))
    _assert_same_tensors(back.outputs, response.outputs)
    assert back.parameters == {"queue_s": 0.25, "ok": True}
    # A client sending typed contents instead of raw bytes (as some v2 clients do).
    from runners.grpc_v2 import inference_pb2 as pb

    message = pb.ModelInferRequest(model_name="m")
    entry = message.inputs.add(name="x", datatype="FP32", shape=[1, 2])
    entry.contents.fp32_contents.extend([1.5, -2.0])
    (x,) = grpc_codec.request_from_message(message).inputs
    np.testing.assert_array_equal(x.data, [[1.5, -2.0]])


def _x(**fields) -> dict:
    return {"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0], **fields}


def _doc(*tensors: dict) -> bytes:
    return json.dumps({"inputs": list(tensors)}).encode()


def _binary(header: bytes, data: bytes) -> tuple[bytes, str]:
    return header + data, str(len(header))


@pytest.mark.parametrize(
    "body, header_length, error",
    [
        (b"{not json", None, "not valid JSON"),
        (b"[]", None, "must be an object"),
        (_doc(), None, "non-empty list"),
        (_doc(_x(shape=[2])), None, "1 elements"),
        (_doc(_x(datatype="FP8")), None, "not one of"),
        (_doc(_x(shape=[-1])), None, "shape"),
        (_doc({"name": "x", "datatype": "FP32", "shape": [1]}), None, "neither"),
        (*_binary(_doc(_x(data=None, parameters={"binary_data_size": 4})), b"\0\0"), "runs past"),
        (*_binary(_doc(_x()), b"junk"), "belong to no tensor"),
        (_doc(_x()), "x", "integer"),
        (_doc(_x()), "100000", "outside"),
    ],
)
def test_malformed_requests_are_refused_with_the_reason(body, header_length, error):
    with pytest.raises(ProtocolError, match=error):
        decode_request(body, header_length)


@pytest.mark.parametrize(
    "items",
    [
        ["a sentence", "another, longer one"],
        [b"\x89PNG...", b"\xff\xd8jpeg"],
        [np.ones(4, np.float32), np.zeros(4, np.float32)],
        [{"a": np.ones(2, np.int64), "b": np.zeros((2, 3))}] * 2,
    ],
    ids=["text", "bytes", "array", "dict"],
)
def test_a_models_items_travel_as_tensors_and_come_back_as_they_were(items):
    codec = ItemCodec(items[0])
    back = codec.items(items_to_tensors(items))
    assert len(back) == len(items)
    for got, want in zip(back, items, strict=True):
        if isinstance(want, dict):
            assert got.keys() == want.keys()
            for key in want:
                np.testing.assert_array_equal(got[key], want[key])
        elif isinstance(want, np.ndarray):
            np.testing.assert_array_equal(got, want)
        else:
            assert got == want and type(got) is type(want)


def test_tensors_that_do_not_fit_the_model_are_refused():
    codec = ItemCodec(np.ones(4, np.float32))
    with pytest.raises(ProtocolError, match=r"the model takes \[-1, 4\]"):
        codec.items(items_to_tensors([np.ones(5, np.float32)]))
    with pytest.raises(ProtocolError, match="datatype FP64"):
        codec.items(items_to_tensors([np.ones(4)]))
    with pytest.raises(ProtocolError, match="not UTF-8"):
        ItemCodec("text").items([Tensor("text", "BYTES", (1,), [b"\xff"])])
    with pytest.raises(ProtocolError, match="unexpected inference input 't'"):
        ItemCodec("text").items([Tensor("t", "BYTES", (1,), [b"x"])])


# --- direct with dynamic batching ------------------------------------------------------------


def test_direct_forms_batches_under_concurrency_and_counts_them():
    cfg = direct_cfg(workers=1)
    cfg.strategy.batching = OmegaConf.structured(
        BatchingConfig(max_batch_size=8, max_queue_delay_ms=2)
    )
    predictor = SleepPredictor(0.004)
    point = LoadPoint(
        "concurrency", 1, warmup_s=0.1, duration_s=0.4, schedule_seed=0, concurrency=8
    )

    async def main():
        runner = DirectRunner.from_predictor(cfg, predictor)
        await runner.start()
        try:
            measurement = await Driver(runner, [predictor.bundle.samples(1, 0)]).run(point)
            return measurement, runner.facts.as_row()
        finally:
            await runner.stop()

    measurement, row = asyncio.run(main())
    formed = {int(size): count for size, count in json.loads(row["batch_sizes_formed"]).items()}
    assert max(formed) > 1 and max(formed) <= 8
    served = measurement.log.size
    assert sum(size * count for size, count in formed.items()) == served


def test_direct_with_batching_serves_the_reference_outputs(tmp_path, cache_dir):
    from bench.run import run_benchmark

    cfg = compose(
        [
            "model=mlp",
            "scenario=concurrency",
            "scenario.levels=[4]",
            "scenario.warmup_s=0.2",
            "scenario.duration_s=0.6",
            "progress=false",
            "accuracy_samples=4",
            "strategy.batching.max_batch_size=4",
            "strategy.batching.max_queue_delay_ms=1",
            f"cache_dir={cache_dir}",
        ]
    )
    rows = run_benchmark(cfg, tmp_path)
    assert (rows["status"] == "measured").all() and (rows["errors"] == 0).all()
    assert (rows["accuracy_cosine_min"] > 0.9999).all()


@pytest.mark.parametrize(
    "overrides, field",
    [
        (["strategy.batching.max_batch_size=0"], "strategy.batching.max_batch_size"),
        (["strategy=grpc", "strategy.batching.max_queue_delay_ms=-1"], "max_queue_delay_ms"),
        (["strategy=http", "strategy.replicas=0"], "strategy.replicas"),
        (["strategy=grpc", "strategy.port=70000"], "strategy.port"),
    ],
)
def test_strategy_values_out_of_range_name_their_field(overrides, field):
    with pytest.raises(ConfigError, match=field):
        validate(compose(["model=mlp", *overrides]))
