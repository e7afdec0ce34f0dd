"""A served model as Triton's model configuration extension describes one
(`GET /v2/models/{name}/config`, gRPC `ModelConfig`), in its JSON form: what Triton's clients,
perf_analyzer among them, read to shape their requests."""

from __future__ import annotations

from typing import Any

from runners.serving import ServingCore

# v2 datatypes as model configuration's DataType names (BYTES is TYPE_STRING there).
DATA_TYPES = {
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "FP16": "TYPE_FP16",
    "FP32": "TYPE_FP32",
    "FP64": "TYPE_FP64",
    "BYTES": "TYPE_STRING",
}


def triton_config(metadata: dict[str, Any], core: ServingCore, provider: str) -> dict[str, Any]:
    """The configuration of the model `metadata` describes, served by `core`.

    `max_batch_size` is the dynamic batcher's (`strategy.batching.max_batch_size`; 1 when it
    is off), so dims leave out the batch axis, as Triton's do; unlike Triton, a request with
    more items is still served, alone. A tensor of one scalar per item (a sentence) has dims
    [1] reshaped to [], so requests of shape [n] and [n, 1] both fit, as the worker reads them.
    `instance_group` counts the predictor threads (`strategy.workers`)."""
    config: dict[str, Any] = {
        "name": metadata["name"],
        "platform": metadata["platform"],
        "max_batch_size": core.max_batch_size,
        "input": [_tensor(spec) for spec in metadata["inputs"]],
        "output": [_tensor(spec) for spec in metadata["outputs"]],
        "instance_group": [
            {
                "name": f"{metadata['name']}_0",
                "kind": "KIND_GPU" if "CUDA" in provider else "KIND_CPU",
                "count": core.workers,
            }
        ],
        "model_transaction_policy": {"decoupled": False},
    }
    if core.max_batch_size > 1:
        delay_us = round(core.max_queue_delay_s * 1e6)
        config["dynamic_batching"] = {"max_queue_delay_microseconds": delay_us}
    return config


def _tensor(spec: dict[str, Any]) -> dict[str, Any]:
    dims = list(spec["shape"][1:])
    entry: dict[str, Any] = {
        "name": spec["name"],
        "data_type": DATA_TYPES[spec["datatype"]],
        "dims": dims or [1],
    }
    if not dims:
        entry["reshape"] = {"shape": []}
    return entry
