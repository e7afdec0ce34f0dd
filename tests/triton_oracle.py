"""Triton's Python clients against one of our workers, reporting what they got as JSON on
stdout. Run by tests/triton_clients.py under .venv-triton's interpreter (tritonclient cannot be
imported beside our own protobuf modules), never imported by the tests.

    python tests/triton_oracle.py http|grpc HOST:PORT MODEL INPUT_JSON
"""

from __future__ import annotations

import json
import sys

import numpy as np
from tritonclient.utils import InferenceServerException


def _error(call) -> str:
    try:
        call()
    except InferenceServerException as exc:
        return f"{exc.status()} {exc.message()}"
    return "no error"


def main(kind: str, url: str, model: str, input_json: str) -> dict:
    if kind == "http":
        import tritonclient.http as client
    else:
        import tritonclient.grpc as client
    server = client.InferenceServerClient(url)
    spec = json.loads(input_json)  # {"name", "datatype", "data": nested list}
    data = np.array(spec["data"], dtype=np.float32)
    report: dict = {
        "live": server.is_server_live(),
        "ready": server.is_model_ready(model),
        "ready_v2": server.is_model_ready(model, "2"),
        "extensions": list(_as_dict(server.get_server_metadata(), kind)["extensions"]),
        "metadata": _as_dict(server.get_model_metadata(model), kind),
        "config": _as_dict(server.get_model_config(model), kind),
    }
    outputs = {}
    for binary_in in (False, True) if kind == "http" else (True,):
        for binary_out in (False, True) if kind == "http" else (True,):
            tensor = client.InferInput(spec["name"], list(data.shape), spec["datatype"])
            options = {"binary_data": binary_in} if kind == "http" else {}
            tensor.set_data_from_numpy(data, **options)
            wanted = [client.InferRequestedOutput(spec["output"], **_binary(kind, binary_out))]
            result = server.infer(model, [tensor], outputs=wanted, model_version="1")
            array = result.as_numpy(spec["output"])
            key = f"in={_form(binary_in)},out={_form(binary_out)}"
            # NaN and infinities as strings: this report is strict JSON too.
            outputs[key] = [
                [v if np.isfinite(v) else str(v) for v in row] for row in array.tolist()
            ]
    report["outputs"] = outputs
    wrong_name = client.InferInput("no_such_input", list(data.shape), spec["datatype"])
    wrong_name.set_data_from_numpy(data)
    report["unknown_input"] = _error(lambda: server.infer(model, [wrong_name]))
    right = client.InferInput(spec["name"], list(data.shape), spec["datatype"])
    right.set_data_from_numpy(data)
    report["unknown_output"] = _error(
        lambda: server.infer(model, [right], outputs=[client.InferRequestedOutput("nope")])
    )
    report["unknown_version"] = _error(lambda: server.infer(model, [right], model_version="2"))
    report["stats"] = _as_dict(server.get_inference_statistics(model), kind)
    return report


def _form(binary: bool) -> str:
    return "binary" if binary else "json"


def _binary(kind: str, binary: bool) -> dict:
    return {"binary_data": binary} if kind == "http" else {}


def _as_dict(answer, kind: str) -> dict:
    """HTTP answers are dicts already; gRPC ones are messages, as Triton's JSON mapping."""
    if kind == "http":
        return answer
    from google.protobuf import json_format

    document = json_format.MessageToDict(answer, preserving_proto_field_name=True)
    return document.get("config", document)  # ModelConfigResponse wraps the config


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:]), allow_nan=False))
