"""Open Inference Protocol messages over gRPC, both directions: the tensors and parameters of
`runners.protocol` as `GRPCInferenceService` messages. Tensors travel as raw contents, as
Triton's clients send them; typed contents from other clients are read too.
"""

from __future__ import annotations

import math
from typing import Any

from runners.grpc_v2 import inference_pb2 as pb
from runners.protocol import (
    BYTES,
    InferRequest,
    InferResponse,
    ProtocolError,
    Tensor,
    array_of,
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
    _add_tensors(message.inputs, message.raw_input_contents, request.inputs)
    return message


def request_from_message(message: pb.ModelInferRequest) -> InferRequest:
    if not message.inputs:
        raise ProtocolError("the request has no inputs")
    inputs = _read_tensors(message.inputs, message.raw_input_contents, "input")
    outputs = [output.name for output in message.outputs]
    return InferRequest(inputs, message.id, _parameters(message.parameters), outputs=outputs)


def response_message(response: InferResponse) -> pb.ModelInferResponse:
    message = pb.ModelInferResponse(
        model_name=response.model_name, model_version=response.model_version, id=response.id
    )
    _set_parameters(message.parameters, response.parameters)
    _add_tensors(message.outputs, message.raw_output_contents, response.outputs)
    return message


def response_from_message(message: pb.ModelInferResponse) -> InferResponse:
    outputs = _read_tensors(message.outputs, message.raw_output_contents, "output")
    return InferResponse(
        message.model_name,
        outputs,
        message.id,
        message.model_version,
        _parameters(message.parameters),
    )


def _add_tensors(entries: Any, raw_contents: Any, tensors: list[Tensor]) -> None:
    """Append `tensors` to a message's repeated inputs or outputs, contents as raw bytes."""
    for tensor in tensors:
        entry = entries.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        _set_parameters(entry.parameters, tensor.parameters)
        raw_contents.append(to_raw(tensor))


def _read_tensors(entries: Any, raw_contents: Any, where: str) -> list[Tensor]:
    """A message's inputs or outputs, from raw contents when sent so, else typed contents."""
    if raw_contents and len(raw_contents) != len(entries):
        raise ProtocolError(f"{len(entries)} {where}s but {len(raw_contents)} raw_{where}_contents")
    return [
        _tensor(entry, raw_contents[i] if raw_contents else None, where)
        for i, entry in enumerate(entries)
    ]


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
    if entry.datatype == BYTES:
        shape = tuple(entry.shape)
        if len(values) != math.prod(shape) or min(shape, default=0) < 0:
            raise ProtocolError(
                f"{where} {entry.name!r}: shape {list(shape)} but {len(values)} values"
            )
        return Tensor(entry.name, BYTES, shape, list(values), parameters)
    # Checked value by value: int_contents carries INT8 as int32, so 1000 would wrap.
    array = array_of(entry.name, entry.datatype, list(entry.shape), values)
    return Tensor(entry.name, entry.datatype, array.shape, array, parameters)


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
