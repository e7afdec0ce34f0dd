"""Open Inference Protocol messages over gRPC, both directions: the tensors and parameters of
`runners.protocol` as `GRPCInferenceService` messages. Tensors travel as raw contents, as
Triton's clients send them; typed contents from other clients are read too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from runners.grpc_v2 import inference_pb2 as pb
from runners.protocol import (
    BYTES,
    DATATYPES,
    InferRequest,
    InferResponse,
    ProtocolError,
    Tensor,
    from_raw,
    to_raw,
)

# Which typed-contents field carries each datatype (FP16 travels raw only).
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    BYTES: "bytes_contents",
}


def request_message(model_name: str, request: InferRequest) -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name=model_name, id=request.id)
    _set_parameters(message.parameters, request.parameters)
    for tensor in request.inputs:
        entry = message.inputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        _set_parameters(entry.parameters, tensor.parameters)
        message.raw_input_contents.append(to_raw(tensor))
    return message


def request_from_message(message: pb.ModelInferRequest) -> InferRequest:
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise ProtocolError(f"{len(message.inputs)} inputs but {len(raw)} raw_input_contents")
    if not message.inputs:
        raise ProtocolError("the request has no inputs")
    inputs = [
        _tensor(entry, raw[i] if raw else None, "input") for i, entry in enumerate(message.inputs)
    ]
    return InferRequest(inputs, message.id, _parameters(message.parameters))


def response_message(response: InferResponse) -> pb.ModelInferResponse:
    message = pb.ModelInferResponse(
        model_name=response.model_name, model_version=response.model_version, id=response.id
    )
    _set_parameters(message.parameters, response.parameters)
    for tensor in response.outputs:
        entry = message.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        _set_parameters(entry.parameters, tensor.parameters)
        message.raw_output_contents.append(to_raw(tensor))
    return message


def response_from_message(message: pb.ModelInferResponse) -> InferResponse:
    raw = message.raw_output_contents
    if raw and len(raw) != len(message.outputs):
        raise ProtocolError(f"{len(message.outputs)} outputs but {len(raw)} raw_output_contents")
    outputs = [
        _tensor(entry, raw[i] if raw else None, "output") for i, entry in enumerate(message.outputs)
    ]
    return InferResponse(
        message.model_name,
        outputs,
        message.id,
        message.model_version,
        _parameters(message.parameters),
    )


def _tensor(entry: Any, raw: bytes | None, where: str) -> Tensor:
    parameters = _parameters(entry.parameters)
    if raw is not None:
        return from_raw(entry.name, entry.datatype, list(entry.shape), raw, parameters)
    field = _CONTENTS.get(entry.datatype)
    if field is None:
        raise ProtocolError(
            f"{where} {entry.name!r}: datatype {entry.datatype!r} needs raw contents"
        )
    values = getattr(entry.contents, field)
    shape = tuple(entry.shape)
    if len(values) != math.prod(shape):
        raise ProtocolError(f"{where} {entry.name!r}: shape {list(shape)} but {len(values)} values")
    if entry.datatype == BYTES:
        return Tensor(entry.name, BYTES, shape, list(values), parameters)
    array = np.asarray(values, dtype=DATATYPES[entry.datatype]).reshape(shape)
    return Tensor(entry.name, entry.datatype, shape, array, parameters)


def _set_parameters(target: Any, parameters: dict[str, Any]) -> None:
    for key, value in parameters.items():
        if isinstance(value, bool):
            target[key].bool_param = value
        elif isinstance(value, int):
            target[key].int64_param = value
        elif isinstance(value, float):
            target[key].double_param = value
        else:
            target[key].string_param = str(value)


def _parameters(source: Any) -> dict[str, Any]:
    return {
        key: getattr(value, value.WhichOneof("parameter_choice"))
        for key, value in source.items()
        if value.WhichOneof("parameter_choice") is not None
    }
