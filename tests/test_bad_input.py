"""Bad input never gets a 5xx: each malformed request to a real worker gets a 4xx (gRPC:
INVALID_ARGUMENT or NOT_FOUND) whose JSON error names the problem, generated requests never get a
5xx and leave memory flat, slow clients are disconnected, and the worker goes on serving. Also
where workers listen: loopback unless asked, with a warning when not."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import time

import grpc
import numpy as np
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runners import Request, build_runner, grpc_codec
from runners.binding import is_loopback
from runners.grpc_v2 import inference_pb2 as pb
from runners.grpc_v2 import inference_pb2_grpc as pb_grpc
from runners.processes import free_port_run, spawn, terminate, wait_ready
from runners.protocol import InferRequest, Tensor
from runners.remote import worker_argv, worker_config, worker_env
from tests.conftest import compose

HEADER_TIMEOUT_S = 2.0
GOOD = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 256], "data": [0.5] * 256}]}


def _post(address: str, body: bytes, path: str = "/v2/models/mlp/infer") -> tuple[int, dict]:
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.fixture(scope="module")
def worker(tmp_path_factory, cache_dir):
    """One MLP worker process over HTTP, started as runners start it, with a short header
    timeout; yields its address and process."""
    cfg = compose(["model=mlp", "strategy=http", f"cache_dir={cache_dir}"])
    folder = tmp_path_factory.mktemp("worker")
    config = folder / "config.yaml"
    config.write_text(worker_config(cfg))
    port = free_port_run("127.0.0.1", 1)
    argv = worker_argv(config, "http", "127.0.0.1", port, 1 << 20)
    argv += ["--header-timeout-s", str(HEADER_TIMEOUT_S)]
    child = spawn("bad-input worker", argv, folder / "worker.log", worker_env(), True)
    address = f"127.0.0.1:{port}"

    async def ready() -> bool:
        try:
            return (await asyncio.to_thread(_post, address, json.dumps(GOOD).encode()))[0] == 200
        except OSError:
            return False

    asyncio.run(wait_ready(child, ready, 120))
    yield address, psutil.Process(child.process.pid)
    asyncio.run(terminate([child], 5))


def _nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def _tensor(**fields) -> bytes:
    entry = {"name": "input", "datatype": "FP32", "shape": [1, 256], "data": [0.5] * 256}
    return json.dumps({"inputs": [{**entry, **fields}]}).encode()


BAD = [
    (_tensor(datatype="INT8", shape=[1], data=[1000]), "1000 is out of the range of INT8"),
    (_tensor(datatype="UINT8", shape=[1], data=[-1]), "-1 is out of the range of UINT8"),
    (_tensor(datatype="INT32", shape=[1], data=[1.5]), "INT32 data must be integers"),
    (_tensor(shape=[1], data=[1]).replace(b"[1]}", b"[1e400]}"), "out of the range of a double"),
    (_tensor(shape=[1], data=[10**400]), "out of the range of FP32"),
    (_tensor(shape=[1], data=[1e39]), "out of the range of FP32"),
    (_tensor(shape=[1], data=[None]), "FP32 data must be numbers"),
    (_tensor(parameters=[1, 2]), "'parameters' must be an object"),
    (_tensor(parameters="binary"), "'parameters' must be an object"),
    (_tensor(parameters=3), "'parameters' must be an object"),
    (
        json.dumps({**GOOD, "outputs": [{"name": "logits", "parameters": [True]}]}).encode(),
        "output 'logits''s 'parameters' must be an object",
    ),
    (json.dumps({**GOOD, "outputs": ["logits"]}).encode(), "outputs[0] must be an object"),
    (json.dumps({**GOOD, "outputs": [{"name": "nope"}]}).encode(), "unexpected inference output"),
    (_tensor(name="no_such_input"), "unexpected inference input 'no_such_input'"),
    (f'{{"inputs": {_nested(100_000)}}}'.encode(), "nested too deeply"),
    (_tensor(shape=[1, 1], data=json.loads(_nested(900))), "shape [1, 1], the model takes"),
]


@pytest.mark.parametrize("body,reason", BAD, ids=[reason for _, reason in BAD])
def test_each_malformed_request_gets_a_400_naming_the_problem(worker, body, reason):
    address, _ = worker
    status, document = _post(address, body)
    assert status == 400 and reason in document["error"], document
    assert _post(address, json.dumps(GOOD).encode())[0] == 200


def test_other_versions_are_not_found_and_the_model_s_own_or_none_is_served(worker):
    address, _ = worker
    good = json.dumps(GOOD).encode()
    status, document = _post(address, good, "/v2/models/mlp/versions/2/infer")
    assert status == 404 and "'mlp' version 2 is not found" in document["error"]
    assert _post(address, good, "/v2/models/mlp/versions/1/infer")[0] == 200
    assert _post(address, good)[0] == 200


def test_nan_in_an_output_is_strict_json(worker):
    address, _ = worker
    entry = {**GOOD["inputs"][0], "data": ["NaN", *[0.5] * 255]}  # our strings in, too
    status, document = _post(address, json.dumps({"inputs": [entry]}).encode())
    assert status == 200
    assert set(document["outputs"][0]["data"]) == {"NaN"}


# --- generated requests ------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["NaN", "Infinity", "x", ""]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)
_datatypes = st.sampled_from(["FP32", "FP16", "INT8", "UINT8", "INT64", "BOOL", "BYTES", "NOPE"])
_tensors = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["input", "other"]) | _values,
        "datatype": _datatypes | _values,
        "shape": st.lists(st.integers(-2, 300), max_size=3) | _values,
        "data": st.lists(_scalars, max_size=8) | _values,
    },
    optional={"parameters": _values},
)
_broken = st.fixed_dictionaries(
    {"inputs": st.lists(_tensors, max_size=2) | _values},
    optional={
        "outputs": st.lists(st.fixed_dictionaries({"name": _values}), max_size=2) | _values,
        "parameters": _values,
        "id": _values,
    },
)
_valid = st.builds(
    lambda rows, value: {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": [rows, 256],
                "data": [value] * rows * 256,
            }
        ]
    },
    st.integers(1, 3),
    st.floats(-1e3, 1e3),
)


@settings(
    max_examples=150,
    database=None,  # nothing written into the checkout
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(document=st.one_of(_valid, _broken), raw=st.none() | st.binary(max_size=40))
def test_generated_requests_never_get_a_5xx(worker, document, raw):
    address, _ = worker
    body = raw if raw is not None else json.dumps(document).encode()
    status, answer = _post(address, body)
    assert status < 500, answer
    assert status == 200 or answer["error"]


def test_after_generated_requests_the_worker_serves_with_flat_memory(worker):
    # Runs after the property test in this module: its hundreds of requests left no growth
    # beyond this bound, and a good request still gets its answer.
    address, process = worker
    before = process.memory_info().rss
    for _ in range(3):
        for body, _reason in BAD:
            assert _post(address, body)[0] == 400
    assert process.memory_info().rss - before < 64 * 2**20
    status, document = _post(address, json.dumps(GOOD).encode())
    assert status == 200 and document["outputs"][0]["shape"] == [1, 64]


# --- slow clients ------------------------------------------------------------------------------


def test_slow_clients_sending_a_header_line_at_a_time_are_disconnected(worker):
    address, _ = worker
    host, port = address.rsplit(":", 1)
    clients = [socket.create_connection((host, int(port)), timeout=10) for _ in range(20)]
    for client in clients:
        client.sendall(b"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: x\r\n")
    closed: set[int] = set()
    for line in range(8):  # a header line every 1.5 s, 12 s at most
        time.sleep(1.5)
        for i, client in enumerate(clients):
            if i in closed:
                continue
            try:
                client.sendall(f"X-Slow-{line}: 1\r\n".encode())
                client.setblocking(False)
                if client.recv(1) == b"":
                    closed.add(i)
            except BlockingIOError:
                pass
            except OSError:  # reset: the server closed it
                closed.add(i)
            finally:
                client.setblocking(True)
        if len(closed) == len(clients):
            break
    for client in clients:
        client.close()
    assert len(closed) == len(clients), f"{len(clients) - len(closed)} slow clients still held"
    assert _post(address, json.dumps(GOOD).encode())[0] == 200


# --- gRPC ----------------------------------------------------------------------------------------


def test_bad_grpc_messages_get_invalid_argument_or_not_found_and_the_server_goes_on(cache_dir):
    cfg = compose(["model=mlp", "strategy=grpc", f"cache_dir={cache_dir}"])
    good = InferRequest([Tensor.from_array("input", np.ones((1, 256), np.float32))])

    def typed(datatype: str, field: str, values: list, shape: list) -> pb.ModelInferRequest:
        message = pb.ModelInferRequest(model_name="mlp")
        tensor = message.inputs.add(name="input", datatype=datatype, shape=shape)
        getattr(tensor.contents, field).extend(values)
        return message

    renamed = grpc_codec.request_message("mlp", good)
    renamed.inputs[0].name = "no_such_input"
    wrong_output = grpc_codec.request_message("mlp", good)
    wrong_output.outputs.add(name="nope")
    other_version = grpc_codec.request_message("mlp", good)
    other_version.model_version = "2"
    cases = [
        (typed("INT8", "int_contents", [1000], [1]), "INVALID_ARGUMENT", "out of the range"),
        (typed("FP32", "fp32_contents", [1.0], [-1, -1]), "INVALID_ARGUMENT", "'shape'"),
        (renamed, "INVALID_ARGUMENT", "no_such_input"),
        (wrong_output, "INVALID_ARGUMENT", "'nope'"),
        (other_version, "NOT_FOUND", "version 2"),
    ]

    async def main():
        runner = build_runner(cfg)
        await runner.start()
        try:
            got = []
            async with grpc.aio.insecure_channel(runner.addresses[0]) as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                for message, _code, _reason in cases:
                    try:
                        await stub.ModelInfer(message)
                        got.append(("OK", ""))
                    except grpc.aio.AioRpcError as exc:
                        got.append((exc.code().name, exc.details()))
            return got, await runner.infer(Request(0, [np.ones(256, np.float32)]))
        finally:
            await runner.stop()

    got, response = asyncio.run(main())
    for (code, details), (_message, want, reason) in zip(got, cases, strict=True):
        assert code == want and reason in details, (code, details)
    assert response.output.shape == (1, 64)


# --- where servers listen ----------------------------------------------------------------------


def test_loopback_is_told_apart():
    assert all(map(is_loopback, ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.1.2.3", "example.org"]))


def test_a_worker_listens_on_loopback_unless_asked_and_warns_when_it_is_not(worker, cache_dir):
    _, process = worker
    listening = {c.laddr.ip for c in process.net_connections("inet") if c.status == "LISTEN"}
    assert listening == {"127.0.0.1"}

    cfg = compose(["model=mlp", "strategy=http", "strategy.host=0.0.0.0", f"cache_dir={cache_dir}"])

    async def main():
        runner = build_runner(cfg)
        with pytest.warns(UserWarning, match="reachable from other machines"):
            await runner.start()
        try:
            return (runner._workdir / "replica-0.log").read_text()
        finally:
            await runner.stop()

    assert "WARNING: this worker" in asyncio.run(main())
