"""The Open Inference Protocol (KServe v2) over HTTP, both directions: requests and responses
as JSON, or with Triton's binary tensor extension (a JSON header whose length the
`Inference-Header-Content-Length` header gives, then each tensor's raw bytes); and how a
request's raw items (sentences, encoded images, feature arrays) travel as v2 tensors.

Pure functions over bytes and arrays: the servers and clients around them own the sockets.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HEADER_LENGTH = "Inference-Header-Content-Length"
BYTES = "BYTES"
# JSON has no literal for these; Triton writes bare NaN/Infinity tokens, which strict parsers
# reject. We write them as these strings (numpy, hence tritonclient's as_numpy, reads them
# back), and read both forms.
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_NON_FINITE_TEXT = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
# Numeric datatypes, little-endian on the wire whatever the host.
DATATYPES: dict[str, np.dtype] = {
    name: np.dtype(kind).newbyteorder("<")
    for name, kind in {
        "BOOL": np.bool_,
        "UINT8": np.uint8,
        "UINT16": np.uint16,
        "UINT32": np.uint32,
        "UINT64": np.uint64,
        "INT8": np.int8,
        "INT16": np.int16,
        "INT32": np.int32,
        "INT64": np.int64,
        "FP16": np.float16,
        "FP32": np.float32,
        "FP64": np.float64,
    }.items()
}
_BY_KIND = {(dtype.kind, dtype.itemsize): name for name, dtype in DATATYPES.items()}
_LENGTH = struct.Struct("<I")


class ProtocolError(ValueError):
    """A message that does not follow the protocol; the text says which part and why."""


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    # Numeric: an array of `shape`. BYTES: the elements as bytes, flattened row-major.
    data: np.ndarray | list[bytes]
    # `content_type: str` (Seldon MLServer's convention) marks BYTES elements that are text.
    parameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_array(cls, name: str, array: np.ndarray) -> Tensor:
        return cls(name, datatype_of(array.dtype), tuple(array.shape), array)


@dataclass
class InferRequest:
    inputs: list[Tensor]
    id: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    # The client wants the outputs as binary data (`binary_data_output`), not JSON lists.
    binary_output: bool = False
    # The outputs the client asked for by name (none named: all of them).
    outputs: list[str] = field(default_factory=list)


@dataclass
class InferResponse:
    model_name: str
    outputs: list[Tensor]
    id: str = ""
    model_version: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


def datatype_of(dtype: np.dtype) -> str:
    """The v2 datatype of a numpy dtype (FP32 for float32...); ProtocolError if it has none."""
    name = _BY_KIND.get((dtype.kind, dtype.itemsize))
    if name is None:
        raise ProtocolError(f"dtype {dtype} has no Open Inference Protocol datatype")
    return name


# --- raw tensor bytes (the binary extension, and gRPC's raw contents) ---------------------------


def to_raw(tensor: Tensor) -> bytes:
    """Row-major little-endian elements; BYTES elements each after a little-endian uint32 length."""
    if tensor.datatype == BYTES:
        return b"".join(_LENGTH.pack(len(item)) + item for item in tensor.data)
    return np.ascontiguousarray(tensor.data, dtype=DATATYPES[tensor.datatype]).tobytes()


def from_raw(
    name: str, datatype: str, shape: Sequence[int], raw: bytes, parameters: dict | None = None
) -> Tensor:
    """The tensor whose raw bytes are `raw`; ProtocolError if their size does not fit `shape`."""
    shape = _shape(shape, name)
    count = math.prod(shape)
    if datatype == BYTES:
        items, offset = [], 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise ProtocolError(f"tensor {name!r}: BYTES data ends inside a length prefix")
            (size,) = _LENGTH.unpack_from(raw, offset)
            offset += 4
            if offset + size > len(raw):
                raise ProtocolError(f"tensor {name!r}: a BYTES element runs past the data")
            items.append(raw[offset : offset + size])
            offset += size
        if len(items) != count:
            raise ProtocolError(f"tensor {name!r}: shape {list(shape)} but {len(items)} elements")
        return Tensor(name, datatype, shape, items, dict(parameters or {}))
    dtype = _dtype(datatype, name)
    if len(raw) != count * dtype.itemsize:
        raise ProtocolError(
            f"tensor {name!r}: shape {list(shape)} of {datatype} needs "
            f"{count * dtype.itemsize} bytes, got {len(raw)}"
        )
    array = np.frombuffer(raw, dtype=dtype).reshape(shape)
    return Tensor(name, datatype, shape, array, dict(parameters or {}))


# --- HTTP/REST messages ------------------------------------------------------------------------


def encode_request(request: InferRequest, binary: bool) -> tuple[bytes, dict[str, str]]:
    """The body and headers of `POST /v2/models/{name}/infer`."""
    parameters = dict(request.parameters)
    if request.binary_output:
        parameters["binary_data_output"] = True
    header: dict[str, Any] = {"id": request.id} if request.id else {}
    if parameters:
        header["parameters"] = parameters
    return _encode(header, "inputs", request.inputs, binary)


def decode_request(body: bytes, header_length: str | None) -> InferRequest:
    """A request's body (and its `Inference-Header-Content-Length`, if any) as an InferRequest."""
    doc, binary = _split(body, header_length)
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError("'inputs' must be a non-empty list of tensors")
    parameters = _parameters(doc, "request")
    outputs = doc.get("outputs", [])
    if not isinstance(outputs, list):
        raise ProtocolError("'outputs' must be a list")
    names, wants_binary = [], bool(parameters.get("binary_data_output"))
    for i, out in enumerate(outputs):
        if not isinstance(out, dict) or not isinstance(out.get("name"), str):
            raise ProtocolError(f"outputs[{i}] must be an object with a string 'name'")
        wants_binary |= _parameters(out, f"output {out['name']!r}").get("binary_data") is True
        names.append(out["name"])
    return InferRequest(
        inputs=_read_tensors(inputs, binary, "inputs"),
        id=str(doc.get("id", "")),
        parameters=parameters,
        binary_output=wants_binary,
        outputs=names,
    )


def encode_response(response: InferResponse, binary: bool) -> tuple[bytes, dict[str, str]]:
    """The body and headers of an inference response; `binary` as the request asked."""
    header: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version:
        header["model_version"] = response.model_version
    if response.id:
        header["id"] = response.id
    if response.parameters:
        header["parameters"] = response.parameters
    return _encode(header, "outputs", response.outputs, binary)


def decode_response(body: bytes, header_length: str | None) -> InferResponse:
    doc, binary = _split(body, header_length)
    outputs = doc.get("outputs")
    if not isinstance(outputs, list):
        raise ProtocolError("'outputs' must be a list of tensors")
    return InferResponse(
        model_name=str(doc.get("model_name", "")),
        outputs=_read_tensors(outputs, binary, "outputs"),
        id=str(doc.get("id", "")),
        model_version=str(doc.get("model_version", "")),
        parameters=_parameters(doc, "response"),
    )


def _encode(
    header: dict[str, Any], key: str, tensors: list[Tensor], binary: bool
) -> tuple[bytes, dict[str, str]]:
    entries, chunks = [], []
    for tensor in tensors:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        parameters = dict(tensor.parameters)
        if binary:
            raw = to_raw(tensor)
            chunks.append(raw)
            parameters["binary_data_size"] = len(raw)
        elif tensor.datatype == BYTES and parameters.get("content_type") == "str":
            entry["data"] = [item.decode() for item in tensor.data]
        elif tensor.datatype == BYTES:
            # JSON has no bytes: MLServer's base64 convention carries arbitrary ones.
            entry["data"] = [base64.b64encode(item).decode("ascii") for item in tensor.data]
            parameters["content_type"] = "base64"
        else:
            entry["data"] = _json_numbers(np.asarray(tensor.data))
        if parameters:
            entry["parameters"] = parameters
        entries.append(entry)
    text = json.dumps({**header, key: entries}, separators=(",", ":"), allow_nan=False).encode()
    if not binary:
        return text, {"Content-Type": "application/json"}
    headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(text))}
    return b"".join([text, *chunks]), headers


def _split(body: bytes, header_length: str | None) -> tuple[dict[str, Any], memoryview]:
    """The JSON header as a dict, and the binary data after it."""
    if header_length is None:
        size = len(body)
    else:
        try:
            size = int(header_length)
        except ValueError:
            raise ProtocolError(
                f"{HEADER_LENGTH} must be an integer, got {header_length!r}"
            ) from None
        if not 0 <= size <= len(body):
            raise ProtocolError(f"{HEADER_LENGTH} {size} is outside the {len(body)}-byte body")
    try:
        doc = json.loads(body[:size], parse_float=_double)
    except ProtocolError:
        raise
    except RecursionError:
        raise ProtocolError("the JSON header is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"the JSON header is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ProtocolError("the JSON header must be an object")
    return doc, memoryview(body)[size:]


def _double(text: str) -> float:
    """A JSON number as a double; ProtocolError where it has none (1e400), as rapidjson does."""
    value = float(text)
    if math.isinf(value):
        raise ProtocolError(f"the number {text} is out of the range of a double")
    return value


def _json_numbers(array: np.ndarray) -> list[Any]:
    """A numeric array's elements for JSON, non-finite floats as NON_FINITE's strings."""
    values = array.ravel().tolist()
    if array.dtype.kind != "f" or np.isfinite(array).all():
        return values
    return [v if math.isfinite(v) else _NON_FINITE_TEXT[str(v)] for v in values]


def _parameters(doc: dict[str, Any], where: str) -> dict[str, Any]:
    parameters = doc.get("parameters", {})
    if not isinstance(parameters, dict):
        raise ProtocolError(f"the {where}'s 'parameters' must be an object")
    return parameters


def _read_tensors(entries: list[Any], binary: memoryview, where: str) -> list[Tensor]:
    tensors, offset = [], 0
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ProtocolError(f"{where}[{i}] must be an object")
        name, datatype = entry.get("name"), entry.get("datatype")
        if not isinstance(name, str) or not isinstance(datatype, str):
            raise ProtocolError(f"{where}[{i}] needs a string 'name' and 'datatype'")
        parameters = dict(_parameters(entry, f"tensor {name!r}"))
        size = parameters.pop("binary_data_size", None)
        if size is not None:
            if (
                not isinstance(size, int)
                or isinstance(size, bool)
                or size < 0
                or offset + size > len(binary)
            ):
                raise ProtocolError(f"tensor {name!r}: binary_data_size {size} runs past the body")
            raw = bytes(binary[offset : offset + size])
            tensors.append(from_raw(name, datatype, entry.get("shape"), raw, parameters))
            offset += size
        elif "data" in entry:
            tensors.append(
                _from_json(name, datatype, entry.get("shape"), entry["data"], parameters)
            )
        else:
            raise ProtocolError(f"tensor {name!r} has neither 'data' nor binary_data_size")
    if offset != len(binary):
        raise ProtocolError(f"{len(binary) - offset} bytes of binary data belong to no tensor")
    return tensors


def _from_json(name: str, datatype: str, shape: Any, data: Any, parameters: dict) -> Tensor:
    shape = _shape(shape, name)
    count = math.prod(shape)
    if datatype == BYTES:
        flat = _flatten(data)
        if len(flat) != count or not all(isinstance(item, str) for item in flat):
            raise ProtocolError(f"tensor {name!r}: shape {list(shape)} needs {count} strings")
        if parameters.get("content_type") == "base64":
            del parameters["content_type"]
            try:
                items = [base64.b64decode(item, validate=True) for item in flat]
            except ValueError:
                raise ProtocolError(f"tensor {name!r}: an element is not base64") from None
        else:
            items = [item.encode() for item in flat]
        return Tensor(name, datatype, shape, items, parameters)
    return Tensor(
        name, datatype, shape, array_of(name, datatype, shape, _flatten(data)), parameters
    )


def array_of(name: str, datatype: str, shape: Any, values: Sequence[Any]) -> np.ndarray:
    """Numeric `values` (flat, row-major: JSON's, or gRPC's typed contents) as a `datatype`
    array of `shape`, each checked: of the right kind and within the datatype's range."""
    shape = _shape(shape, name)
    dtype = _dtype(datatype, name)
    if len(values) != math.prod(shape):
        raise ProtocolError(f"tensor {name!r}: shape {list(shape)} but {len(values)} elements")
    return _numbers(name, datatype, dtype, list(values)).reshape(shape)


def _numbers(name: str, datatype: str, dtype: np.dtype, flat: list[Any]) -> np.ndarray:
    kinds = {type(v) for v in flat}
    if dtype.kind == "b":
        if kinds - {bool}:
            raise ProtocolError(f"tensor {name!r}: BOOL data must be true or false")
        return np.array(flat, dtype=dtype)
    if dtype.kind in "iu":
        if kinds - {int}:
            raise ProtocolError(f"tensor {name!r}: {datatype} data must be integers")
        info = np.iinfo(dtype)
        if flat and (min(flat) < info.min or max(flat) > info.max):
            bad = next(v for v in flat if not info.min <= v <= info.max)
            raise ProtocolError(
                f"tensor {name!r}: {bad} is out of the range of {datatype} [{info.min}, {info.max}]"
            )
        return np.array(flat, dtype=dtype)
    if kinds - {int, float, str} or (
        str in kinds and any(isinstance(v, str) and v not in NON_FINITE for v in flat)
    ):
        raise ProtocolError(
            f"tensor {name!r}: {datatype} data must be numbers (or "
            f"{', '.join(map(repr, NON_FINITE))})"
        )
    if str in kinds:
        flat = [NON_FINITE.get(v, v) if isinstance(v, str) else v for v in flat]
    try:
        wide = np.array(flat, dtype=np.float64)
    except OverflowError:  # an integer past any double
        wide = None
    limit = float(np.finfo(dtype).max)
    if wide is None or (np.abs(wide[np.isfinite(wide)]) > limit).any():
        raise ProtocolError(f"tensor {name!r}: a value is out of the range of {datatype}")
    return wide.astype(dtype)


def _flatten(data: Any) -> list[Any]:
    """Nested lists' leaves in row-major order, without recursion (any depth is safe)."""
    if not isinstance(data, list):
        return [data]
    leaves, stack = [], [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            leaves.append(item)
        else:
            stack.pop()
    return leaves


def _shape(shape: Any, name: str) -> tuple[int, ...]:
    if not isinstance(shape, (list, tuple)) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ProtocolError(f"tensor {name!r}: 'shape' must be a list of sizes >= 0, got {shape!r}")
    return tuple(shape)


def _dtype(datatype: str, name: str) -> np.dtype:
    dtype = DATATYPES.get(datatype)
    if dtype is None:
        accepted = ", ".join([*DATATYPES, BYTES])
        raise ProtocolError(f"tensor {name!r}: datatype {datatype!r} is not one of {accepted}")
    return dtype


# --- a model's raw items as tensors ------------------------------------------------------------


@dataclass(frozen=True)
class TensorSpec:
    """One input as model metadata lists it; -1 is the batch axis (any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


def items_to_tensors(items: Sequence[Any]) -> list[Tensor]:
    """A request's items as tensors: sentences as one BYTES tensor `text` (content_type str),
    encoded files as BYTES `data`, arrays stacked into one tensor `input`, dicts of arrays as
    one tensor per key."""
    first = items[0]
    if isinstance(first, str):
        text = [s.encode() for s in items]
        return [Tensor("text", BYTES, (len(items),), text, {"content_type": "str"})]
    if isinstance(first, bytes):
        return [Tensor("data", BYTES, (len(items),), list(items))]
    if isinstance(first, dict):
        return [Tensor.from_array(key, np.stack([item[key] for item in items])) for key in first]
    return [Tensor.from_array("input", np.stack(items))]


class ItemCodec:
    """A model's raw items from request tensors, checked against one example item, the way
    the server turns what any v2 client sends into what the model's preprocessing takes."""

    def __init__(self, example: Any) -> None:
        self.kind = (
            "text"
            if isinstance(example, str)
            else "bytes"
            if isinstance(example, bytes)
            else "dict"
            if isinstance(example, dict)
            else "array"
        )
        self.specs = [
            TensorSpec(t.name, t.datatype, (-1, *t.shape[1:])) for t in items_to_tensors([example])
        ]

    def items(self, tensors: Sequence[Tensor]) -> list[Any]:
        """The items the tensors carry; ProtocolError naming what does not fit the model."""
        if self.kind == "dict":
            by_name = {t.name: t for t in tensors}
            expected = [spec.name for spec in self.specs]
            unexpected = sorted(set(by_name) - set(expected))
            if unexpected:
                raise ProtocolError(
                    f"unexpected inference input {unexpected[0]!r}; the model's inputs are "
                    f"{expected}"
                )
            if sorted(by_name) != sorted(expected) or len(by_name) != len(tensors):
                raise ProtocolError(f"inputs must be {expected}, got {[t.name for t in tensors]}")
            arrays = {spec.name: self._checked(by_name[spec.name], spec) for spec in self.specs}
            counts = {len(a) for a in arrays.values()}
            if len(counts) != 1:
                raise ProtocolError(f"inputs disagree on the batch size: {sorted(counts)}")
            return [{name: a[i] for name, a in arrays.items()} for i in range(counts.pop())]
        if len(tensors) != 1:
            raise ProtocolError(f"expected one input tensor, got {len(tensors)}")
        if tensors[0].name != self.specs[0].name:
            raise ProtocolError(
                f"unexpected inference input {tensors[0].name!r}; "
                f"the model's input is {self.specs[0].name!r}"
            )
        data = self._checked(tensors[0], self.specs[0])
        if self.kind == "text":
            try:
                return [item.decode() for item in data]
            except UnicodeDecodeError:
                raise ProtocolError(f"input {tensors[0].name!r}: text is not UTF-8") from None
        return list(data)

    @staticmethod
    def _checked(tensor: Tensor, spec: TensorSpec) -> Any:
        if tensor.datatype != spec.datatype:
            raise ProtocolError(
                f"input {tensor.name!r}: datatype {tensor.datatype}, "
                f"the model takes {spec.datatype}"
            )
        if not tensor.shape or tensor.shape[0] == 0:
            raise ProtocolError(f"input {tensor.name!r}: no items (shape {list(tensor.shape)})")
        if tensor.datatype == BYTES:
            # Triton clients often send strings as shape [n, 1].
            if math.prod(tensor.shape[1:]) != 1:
                raise ProtocolError(
                    f"input {tensor.name!r}: shape {list(tensor.shape)}, expected [batch]"
                )
            return tensor.data
        if tuple(tensor.shape[1:]) != spec.shape[1:]:
            raise ProtocolError(
                f"input {tensor.name!r}: shape {list(tensor.shape)}, "
                f"the model takes {[-1, *spec.shape[1:]]}"
            )
        return tensor.data
