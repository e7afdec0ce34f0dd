"""What a worker serves over either protocol: one v2 model (name, metadata, inference) in front
of a serving core, and the facts the worker measured about itself.

The HTTP app and the gRPC servicer are thin translations onto this one object, so both
protocols serve the same model the same way.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bench.backends import Predictor, import_backend
from runners.batching import Served
from runners.model_config import triton_config
from runners.model_stats import ModelStats
from runners.protocol import (
    InferRequest,
    InferResponse,
    ItemCodec,
    ProtocolError,
    Tensor,
    datatype_of,
)
from runners.serving import ServingCore, clock

if TYPE_CHECKING:
    from runners.generation_service import GenerationService
    from runners.worker_metrics import WorkerMetrics

SERVER_NAME = "bench-worker"
MODEL_VERSION = "1"
# Triton's binary tensor, model configuration and statistics extensions, and ours:
# GET /v2/bench/worker, gRPC BenchWorker.
EXTENSIONS = ("binary_tensor_data", "model_configuration", "statistics", "bench_worker")


class UnknownModel(LookupError):
    """A request for a model or version this worker does not serve (HTTP 404, NOT_FOUND)."""


class ModelService:
    """One model behind a serving core; `start()` builds it, `infer()` serves v2 requests."""

    def __init__(
        self,
        name: str,
        core: ServingCore,
        protocol: str,
        spawned_at: float,
        entered_at: float | None = None,
        generation: Any = None,
    ) -> None:
        """`spawned_at`: the parent's `time.monotonic()` when it started this process (one
        clock for every process on the host), so the worker can time its own start;
        `entered_at`: when the interpreter began running our code (default: now);
        `generation`: how a generative model's tokens are batched (`strategy.generation`;
        None: its generation endpoints are off)."""
        self.name = name
        self.core = core
        self.protocol = protocol
        self.spawned_at = spawned_at
        self.entered_at = time.monotonic() if entered_at is None else entered_at
        self.process_s = float("nan")  # spawned -> the interpreter runs our code
        self.imports_s = float("nan")  # -> the predictor's build begins, plus its framework's
        self.framework_import_s = 0.0  # the backend's import, inside the predictor's build
        self.codec: ItemCodec | None = None
        self.stats = ModelStats()
        # Prometheus metrics, where they are on; `metrics_port` is where they are served (an
        # HTTP worker's own port, a gRPC worker's metrics port), set by whoever serves them.
        self.metrics: WorkerMetrics | None = None
        self.metrics_port: int | None = None
        self._metadata: dict[str, Any] = {}
        self.generation_settings = generation
        # A generative model's token-by-token serving, once started; else why there is none.
        self.generation: GenerationService | None = None
        self.generation_refusal = "it is not a generative model (model=causal_lm is)"

    async def start(self, build: Callable[[], Predictor]) -> None:
        """Build the predictor and run it once; the server listens only after this."""
        began = time.monotonic()
        self.process_s = self.entered_at - self.spawned_at
        self.imports_s = began - self.entered_at
        await self.core.start(build)
        bundle = self.core.predictor.bundle
        self.codec = ItemCodec(bundle.samples(1, 0)[0])
        output = self.core.example_output
        self._metadata = {
            "name": self.name,
            "versions": [MODEL_VERSION],
            "platform": f"bench_{self.core.predictor.info.backend}",
            "inputs": [
                {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}
                for spec in self.codec.specs
            ],
            "outputs": [
                {
                    "name": bundle.output_name,
                    "datatype": datatype_of(output.dtype),
                    "shape": [-1, *output.shape[1:]],
                }
            ],
        }
        if bundle.tokenizer is not None:
            await self._start_generation()

    async def _start_generation(self) -> None:
        """The generation engine over the predictor's language model, warmed with one short
        generation; or, where it cannot run, why not (`generation_refusal`)."""
        from runners.generation_service import start_generation

        predictor = self.core.predictor
        if self.generation_settings is None:
            self.generation_refusal = f"strategy {self.protocol!r} serves no generation"
            return
        if not hasattr(predictor, "language_model"):
            self.generation_refusal = (
                "generation runs on a torch module (backend=torch or torch_compile), not "
                f"backend={predictor.info.backend}"
            )
            return
        self.generation = await start_generation(self.name, predictor, self.generation_settings)

    def import_backend(self, backend: str) -> None:
        """Import the backend's module and framework, timed: `build` calls it first, so the
        framework's import counts as an import, not as loading the model."""
        began = time.monotonic()
        import_backend(backend)
        self.framework_import_s += time.monotonic() - began

    async def stop(self) -> None:
        if self.generation is not None:
            self.generation.engine.stop()
            self.generation = None
        await self.core.stop()

    def check(self, name: str, version: str = "") -> None:
        """UnknownModel unless `name` is this model and `version` is its one version or none;
        the messages are Triton's."""
        if name != self.name:
            raise UnknownModel(
                f"Request for unknown model: {name!r} is not found; "
                f"this server serves {self.name!r}"
            )
        if version not in ("", MODEL_VERSION):
            raise UnknownModel(
                f"Request for unknown model: {name!r} version {version} is not found; "
                f"it has version {MODEL_VERSION}"
            )

    def metadata(self) -> dict[str, Any]:
        """The v2 model metadata: the raw inputs clients send, the output they get."""
        return self._metadata

    def config(self) -> dict[str, Any]:
        """The model as Triton's model configuration extension describes one (its JSON form)."""
        return triton_config(self._metadata, self.core, self.core.predictor.info.provider)

    def statistics(self) -> dict[str, Any]:
        """Triton's statistics extension's document for this model, from what it counted."""
        return {"model_stats": [self.stats.document(self.name, MODEL_VERSION, self.core)]}

    async def infer(self, request: InferRequest) -> InferResponse:
        """Serve one request; ProtocolError if its tensors or the outputs it asks for do not
        fit the model. The response parameters carry
        the server-side queue and compute seconds and the batch it rode in."""
        metrics = self.metrics
        if metrics is None:
            return await self._infer(request)
        arrived = clock()
        metrics.received()
        try:
            response = await self._infer(request)
        except ProtocolError:
            metrics.refused()
            raise
        except Exception:  # the model failed on a well-formed request
            metrics.failed()
            raise
        except BaseException:  # cancelled: no answer is wanted any more; nobody failed
            metrics.cancelled()
            raise
        timings = response.parameters
        metrics.served(clock() - arrived, timings["queue_s"], timings["compute_s"])
        return response

    async def _infer(self, request: InferRequest) -> InferResponse:
        arrived = clock()
        output_name = self.core.predictor.bundle.output_name
        for name in request.outputs:
            if name != output_name:
                raise ProtocolError(
                    f"unexpected inference output {name!r} for model {self.name!r}; "
                    f"its output is {output_name!r}"
                )
        items = self.codec.items(request.inputs)
        decoded = clock()
        try:
            served = await self.core.infer(items)
        except Exception:
            self.stats.failed(clock() - arrived)
            raise
        returned = clock()
        output = Tensor.from_array(output_name, served.output)
        self.stats.served(len(items), served, arrived, decoded, returned, clock())
        return InferResponse(
            model_name=self.name,
            outputs=[output],
            id=request.id,
            model_version=MODEL_VERSION,
            parameters={
                "queue_s": served.queue_s,
                "compute_s": served.compute_s,
                "batch_size": served.batch_size,
                "batch_requests": served.batch_requests,
                **self._cache_parameters(served),
            },
        )

    def _cache_parameters(self, served: Served) -> dict[str, Any]:
        """With a response cache: whether it answered, and what it holds now."""
        cache = self.core.cache
        if cache is None:
            return {}
        return {"cache_hit": bool(served.cache_hit), "cache_entries": cache.entries,
                "cache_bytes": cache.bytes}  # fmt: skip

    def worker_facts(self) -> dict[str, Any]:
        """What this worker measured about itself (the `bench_worker` extension's document):
        its start-up in parts that add up (process, imports, model load, first inference),
        whether torch was ever imported (an ONNX Runtime worker should never need it), and the
        port serving its Prometheus metrics at /metrics (None: metrics off)."""
        return {
            "pid": os.getpid(),
            "protocol": self.protocol,
            "process_s": self.process_s,
            "imports_s": self.imports_s + self.framework_import_s,
            "model_load_s": self.core.model_load_s - self.framework_import_s,
            "first_inference_s": self.core.first_inference_s,
            "torch_imported": "torch" in sys.modules,
            "batch_sizes": {str(k): v for k, v in sorted(self.core.batch_sizes.items())},
            "metrics_port": self.metrics_port,
            "predictor": self.core.predictor.info.as_row(),
            # How the generation engine batched so far (None: the model does not generate).
            "generation": self.generation.engine.facts() if self.generation else None,
        }
