"""Typed configuration: one dataclass per config-group option, stored in Hydra's ConfigStore.

The YAML presets in `conf/<group>/<name>.yaml` extend these schemas (Hydra's "extending configs"
pattern), so a misspelled field fails at composition time with a message naming the field and
the schema it is not in, and a misspelled option names the accepted ones.

Validation here is pure: it raises `ConfigError` naming the field and the accepted values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class ConfigError(ValueError):
    """A configuration value that composes but cannot be used; the message names the field."""


# --- model -------------------------------------------------------------------------------------


@dataclass
class ModelConfig:
    name: str = MISSING
    seed: int = 0


@dataclass
class MiniLMConfig(ModelConfig):
    name: str = "minilm"
    # Sentences are drawn from a fixed corpus; tokenisation pads to the longest in the batch.
    max_length: int = 128


@dataclass
class MLPConfig(ModelConfig):
    name: str = "mlp"
    in_features: int = 256
    hidden: list[int] = field(default_factory=lambda: [512, 512])
    out_features: int = 64


@dataclass
class EfficientNetLite0Config(ModelConfig):
    """The real EfficientNet-Lite0 ImageNet classifier; requests carry encoded images."""

    name: str = "efficientnet_lite0"
    image_size: int = 224


@dataclass
class OnnxFileModelConfig(ModelConfig):
    """A user's ONNX file. Inputs are random tensors of the graph's own dtypes and shapes;
    `input_shapes` fixes dimensions the graph leaves symbolic (the batch axis excluded)."""

    name: str = "onnx_file"
    path: str = MISSING
    input_shapes: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class TorchFileModelConfig(ModelConfig):
    """A user's TorchScript (`torch.jit.save`) or `torch.export` (`.pt2`) file, loaded safely.
    `input_shapes` gives each input's shape without the batch axis, as name -> dims, and
    `input_dtype` their element type (float32, float64, float16, int64, int32, int8, uint8,
    bool); a `torch.export` program brings its own shapes and dtypes, and `input_shapes` may
    override its shapes."""

    name: str = "torch_file"
    path: str = MISSING
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    input_dtype: str = "float32"


@dataclass
class PythonModelConfig(ModelConfig):
    """`pkg.module:build`, imported from the working directory or PYTHONPATH.

    `build()` takes no arguments and returns `(module, make_inputs)`: `module` is a
    `torch.nn.Module` called with the inputs positionally, in the key order of `make_inputs`'
    dict, returning one tensor with the batch as its first axis; `make_inputs(batch_size: int,
    seed: int) -> dict[str, np.ndarray]` gives every input with `batch_size` rows, the same
    arrays for the same seed. Every process that serves or checks the model calls `build()`,
    so it must give the same weights each time (seed any random initialisation)."""

    name: str = "python"
    target: str = MISSING


# --- backend -----------------------------------------------------------------------------------


@dataclass
class BackendConfig:
    name: str = MISSING
    # Intra-op threads per predictor; null lets the runtime choose (all cores).
    threads: int | None = None
    device: str = "cpu"


@dataclass
class TorchBackendConfig(BackendConfig):
    name: str = "torch"


@dataclass
class OnnxRuntimeBackendConfig(BackendConfig):
    name: str = "onnxruntime"
    # Execution provider asked for; the one actually active is recorded and must match.
    provider: str = "CPUExecutionProvider"
    graph_optimization: str = "all"  # disable | basic | extended | all
    opset: int = 18


@dataclass
class TorchCompileBackendConfig(BackendConfig):
    """`torch.compile` over the (optimized) eager module; compiled once at start-up."""

    name: str = "torch_compile"
    mode: str = "default"  # default | reduce-overhead | max-autotune | max-autotune-no-cudagraphs
    # Shapes vary per request (sequence length, batch): compile them as symbolic once rather
    # than recompiling mid-measurement whenever a new shape arrives.
    dynamic: bool = True
    # Inductor's cache folder; null: <cache_dir>/inductor. Set explicitly so cold and warm
    # compiles are told apart, instead of depending on a shared default under /tmp.
    inductor_cache_dir: str | None = None


# --- optimization ------------------------------------------------------------------------------


@dataclass
class OptimizationConfig:
    name: str = MISSING


@dataclass
class NoOptimizationConfig(OptimizationConfig):
    name: str = "none"


@dataclass
class Int8DynamicConfig(OptimizationConfig):
    """Weights int8 ahead of time, activations quantized per call (torch and ONNX Runtime)."""

    name: str = "int8_dynamic"
    # Per-channel scales keep MiniLM's cosine near 0.99 where per-tensor drops it to ~0.93.
    per_channel: bool = True


@dataclass
class Int8StaticConfig(OptimizationConfig):
    """ONNX Runtime QDQ: weights and activations int8, activation ranges calibrated on the
    model's own sample inputs. The CNN choice, where dynamic quantization is slow and wrong."""

    name: str = "int8_static"
    per_channel: bool = True
    calibration_samples: int = 32
    # percentile kept 28 of 32 EfficientNet top-1 answers here where minmax kept 25.
    calibration_method: str = "percentile"  # minmax | entropy | percentile


@dataclass
class Bf16Config(OptimizationConfig):
    """bfloat16 weights and activations (torch); fast where the CPU has AVX512-BF16 or AMX."""

    name: str = "bf16"


@dataclass
class Fp16Config(OptimizationConfig):
    """float16 on a GPU (torch .half(), ONNX Runtime's float16 conversion)."""

    name: str = "fp16"


@dataclass
class PruneStructuredConfig(OptimizationConfig):
    """Remove the least important feed-forward neurons: the matrices really get smaller."""

    name: str = "prune_structured"
    amount: float = 0.3  # fraction of each feed-forward block's hidden neurons removed


@dataclass
class PruneMagnitudeConfig(OptimizationConfig):
    """Zero the smallest weights (unstructured): a smaller compressed file, no dense speed-up."""

    name: str = "prune_magnitude"
    amount: float = 0.5  # fraction of all Linear weights set to zero


# --- strategy ----------------------------------------------------------------------------------


@dataclass
class StrategyConfig:
    name: str = MISSING


@dataclass
class BatchingConfig:
    """Dynamic batching, as Triton's dynamic batcher does it: a request waits up to
    `max_queue_delay_ms` (counted from the oldest waiting request) for others to join it, and a
    batch goes as soon as it holds `max_batch_size` items. Requests are never split; one larger
    than `max_batch_size` runs alone. `max_batch_size: 1` serves each request on its own."""

    max_batch_size: int = 1
    # 0 (Triton's default): batch only what queued while every predictor thread was busy.
    max_queue_delay_ms: float = 0.0


@dataclass
class DirectStrategyConfig(StrategyConfig):
    name: str = "direct"
    # Threads calling the predictor; requests beyond them wait in the pool's queue.
    workers: int = 1
    batching: BatchingConfig = field(default_factory=BatchingConfig)


@dataclass
class ServedStrategyConfig(StrategyConfig):
    """A model server per replica, in its own process, speaking the Open Inference Protocol
    (KServe v2) on loopback; the worker builds its predictor from this config."""

    replicas: int = 1
    # Predictor threads per replica (Triton's instance count); more requests wait in its queue.
    workers: int = 1
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    # Where servers listen: 127.0.0.1 unless you mean to expose them.
    host: str = "127.0.0.1"
    # First replica's port; the others take the next ones (and nginx, if any, the one after).
    # 0: the first free run of ports.
    port: int = 0
    # A request body (or gRPC message) larger than this gets an error; the server stays up.
    max_request_bytes: int = 32 * 1024 * 1024
    # Spawn to ready, per replica (model exports on a cold cache take a while).
    start_timeout_s: float = 180.0
    # SIGTERM, then SIGKILL after this long.
    stop_timeout_s: float = 5.0


@dataclass
class HttpStrategyConfig(ServedStrategyConfig):
    """uvicorn per replica; an aiohttp client spreads requests round robin over the replicas,
    or talks to an nginx in front of them (`load_balancer: nginx`)."""

    name: str = "http"
    load_balancer: str = "none"  # none | nginx
    # Tensors as Triton's binary extension (binary) or as JSON lists (json).
    payload: str = "binary"
    # The client's connection pool, all replicas together; a request past it waits, unseen by
    # the driver's late-send check, so keep it above the load's concurrency.
    client_connections: int = 1024


@dataclass
class GrpcStrategyConfig(ServedStrategyConfig):
    """grpcio's asyncio server per replica; a `grpc.aio` channel per replica, round robin."""

    name: str = "grpc"


@dataclass
class IsolatedStrategyConfig(HttpStrategyConfig):
    """HTTP replicas of the worker, each inside isolation with real resource limits."""

    # podman (a container engine), cgroup (a worker process in its own v2 or v1 cgroups),
    # affinity (CPU affinity and RLIMIT_AS, no throttling counters), or auto: the first of
    # these that works here.
    isolation: str = "auto"


@dataclass
class ContainerStrategyConfig(IsolatedStrategyConfig):
    """The worker in a container whose limits mirror a Kubernetes pod's `resources.limits`."""

    name: str = "container"
    # limits.cpu in cores (0.5 = 500m): a CFS quota of `cpus` x 100 ms per 100 ms period, as
    # the kubelet sets it. The worker still sees every core and sizes its thread pool from
    # them, so a quota below its threads throttles it. null: no CPU limit.
    cpus: float | None = 1.0
    # limits.memory in MB (no swap); past it the worker is OOM-killed. null: no memory limit.
    memory_mb: int | None = 2048


@dataclass
class DeviceProfileConfig:
    """A constrained device: its cores (the worker is pinned to that many), its memory (a hard
    cap) and the intra-op threads the runtime uses there (they replace `backend.threads`)."""

    name: str = MISSING
    cores: int = 1
    memory_mb: int = 512
    threads: int = 1


@dataclass
class EdgeStrategyConfig(IsolatedStrategyConfig):
    """One worker confined to a device profile (`strategy/device=tiny|small|rpi4`); a model
    that runs out of memory or time starting there is recorded as "does not fit"."""

    name: str = "edge"
    device: DeviceProfileConfig = field(default_factory=DeviceProfileConfig)
    start_timeout_s: float = 120.0


@dataclass
class ServerlessStrategyConfig(StrategyConfig):
    """Scale to zero: an instance (a worker process, one predictor thread, no batching) is
    spawned when a request finds none idle, stays warm `keep_alive_s` after its last request,
    and serves one request at a time; at most `max_instances` exist at once."""

    name: str = "serverless"
    max_instances: int = 4
    # Real platforms keep an idle instance for minutes; seconds here, so that a benchmark of a
    # few minutes sees cold starts. Set your platform's.
    keep_alive_s: float = 5.0
    # A request arriving with `max_instances` busy waits for one (queue) or fails (reject).
    overflow: str = "queue"
    # Memory billed per instance, as a platform's configured memory size (Lambda: 128 to
    # 10,240 MB). null: each instance's own peak RSS, measured.
    memory_mb: int | None = None
    host: str = "127.0.0.1"
    max_request_bytes: int = 32 * 1024 * 1024
    # Spawn to ready, per instance.
    start_timeout_s: float = 180.0
    # SIGTERM, then SIGKILL after this long.
    stop_timeout_s: float = 5.0


@dataclass
class EndpointStrategyConfig(StrategyConfig):
    """A service already deployed at `url`: the harness starts nothing, only sends requests and
    measures. `protocol: v2` speaks the Open Inference Protocol (Triton, KServe, MLServer, our
    workers) at `url`/v2/...; `protocol: json` POSTs `request_template` to `url` itself."""

    name: str = "endpoint"
    url: str = "http://127.0.0.1:8000"
    # v2: the served model's name; null: model.name.
    model_name: str | None = None
    protocol: str = "v2"  # v2 | json
    # v2 tensors as JSON lists (json, every v2 server) or Triton's binary extension (binary).
    payload: str = "json"
    # json: the body, with `{{inputs}}` where the request's items go as a JSON list (sentences
    # as strings, arrays as nested lists).
    request_template: str = '{"inputs": {{inputs}}}'
    # json: where the outputs (one per item) are in the response: keys and list indices
    # separated by dots ("predictions", "outputs.0.data"); empty: the whole response.
    response_path: str = "outputs"
    # The client's connection pool; a request past it waits, so keep it above the load's.
    client_connections: int = 1024
    # How long start() waits for the service to say it is ready.
    start_timeout_s: float = 30.0


# --- scenario ----------------------------------------------------------------------------------


@dataclass
class ScenarioConfig:
    """What every load point shares: how long, how much warm-up, and what makes it valid."""

    name: str = MISSING
    batch_size: int = 1
    warmup_s: float = 2.0
    duration_s: float = 10.0
    # Validity (MLPerf LoadGen style): a point shorter than these is INVALID.
    min_duration_s: float = 5.0
    min_requests: int = 100
    # The last `stability_windows` windows must agree within `stability_tolerance`.
    stability_windows: int = 3
    stability_tolerance: float = 0.10
    # A send more than `late_send_ms` after its intended time is late; over `max_late_fraction`
    # of them and the generator, not the system under test, set the pace.
    late_send_ms: float = 1.0
    max_late_fraction: float = 0.01
    # Optional latency SLO on a percentile (p50, p90, p95, p99, p999) of `latency_*`.
    slo_ms: float | None = None
    slo_percentile: str = "p99"
    # Requests still in flight this long after the window ends count as errors (timeouts).
    drain_timeout_s: float = 30.0
    seed: int = 0


@dataclass
class SingleStreamScenarioConfig(ScenarioConfig):
    """One request at a time; the next is sent when the previous completes."""

    name: str = "single_stream"


@dataclass
class ServerScenarioConfig(ScenarioConfig):
    """Open loop: Poisson arrivals at `target_qps`, seeded, independent of completions."""

    name: str = "server"
    target_qps: float = 20.0
    # Client connections (wrk2's -c): a request due while all are busy waits for one, and its
    # send is late; latency_* still counts from the intended time. null: no limit, pure open loop.
    connections: int | None = None


@dataclass
class OfflineScenarioConfig(ScenarioConfig):
    """All requests sent at once; measures maximum throughput at `batch_size`."""

    name: str = "offline"
    # Requests to send; null sizes it from the warm-up's measured rate to fill `duration_s`.
    requests: int | None = None
    batch_size: int = 8
    min_duration_s: float = 2.0


@dataclass
class ConcurrencyScenarioConfig(ScenarioConfig):
    """Closed loop: N requests outstanding; one load point per entry of `levels`."""

    name: str = "concurrency"
    levels: list[int] = field(default_factory=lambda: [1, 2, 4])


@dataclass
class SloSearchScenarioConfig(ScenarioConfig):
    """The highest Poisson rate whose `slo_percentile` latency meets `slo_ms`: a closed-loop
    probe estimates saturation, then `server` points narrow the bracket."""

    name: str = "slo_search"
    slo_ms: float | None = 100.0
    # Stop when the highest passing and lowest failing rates are this close (relative).
    tolerance: float = 0.05
    max_points: int = 8  # server points, not counting the probe
    # Client connections per server point, as in `server`; null: unlimited.
    connections: int | None = None


@dataclass
class IntermittentScenarioConfig(ScenarioConfig):
    """Open loop, sparse: one request every `gap_s` (each gap drawn uniformly within
    +-`jitter` x `gap_s`, seeded). Gaps longer than a serverless keep-alive make cold starts."""

    name: str = "intermittent"
    gap_s: float = 6.0
    jitter: float = 0.5
    warmup_s: float = 0.0  # the first requests' cold starts are what this measures
    duration_s: float = 120.0
    # A request per gap: 20 take two minutes at the defaults. Stability across windows is not
    # judged (a window holds a handful of requests, cold and warm by design).
    min_duration_s: float = 30.0
    min_requests: int = 20


@dataclass
class BurstyScenarioConfig(ScenarioConfig):
    """Open loop: bursts of `burst_size` requests arriving as a Poisson process at `burst_qps`,
    separated by `idle_s` of silence (from a burst's last request to the next's first)."""

    name: str = "bursty"
    burst_size: int = 20
    burst_qps: float = 50.0
    idle_s: float = 8.0
    warmup_s: float = 0.0
    duration_s: float = 60.0
    min_duration_s: float = 30.0
    min_requests: int = 50


# --- plan ------------------------------------------------------------------------------------


@dataclass
class PlanConfig:
    """The target the capacity planner sizes for, from a run's measurements."""

    enabled: bool = True
    peak_qps: float = 100.0
    percentile: str = "p99"
    slo_ms: float = 100.0
    # Spare capacity on top of the peak: servers = ceil(peak * (1 + headroom) / capacity).
    headroom: float = 0.3
    # Never fewer servers than this (2: survive losing one).
    min_servers: int = 1
    # Euros per US dollar, to compare a serverless cost priced in USD with EUR server prices;
    # an exchange rate is a price: null until you give one (dated, in your own preset).
    eur_per_usd: float | None = None
    # The host's calibration micro-benchmark (cached per host, so it runs once).
    calibration_s: float = 30.0
    # Container image the Kubernetes manifests name; build it from the generated Dockerfile.
    image: str = "registry.example.com/bench-serving:latest"


# --- catalog -----------------------------------------------------------------------------------


@dataclass
class PriceConfig:
    """A monthly price for one catalog server, with the date it was quoted and where; all
    three are required, so no price enters a plan without its provenance."""

    eur_per_month: float = MISSING
    as_of: str = MISSING  # ISO date: 2026-10-07, or 2026-10
    source: str = MISSING  # a URL, an offer id, or a catalog source id


@dataclass
class ServerlessPricingConfig:
    """Pay-per-use prices, with the date they were read and where; null prices leave the cost
    columns NaN. Defaults: AWS Lambda on-demand, x86, US East (N. Virginia), the first duration
    tier (up to 6 billion GB-s a month), free tier not deducted. Read 2026-11-25: USD 0.20 per
    million requests and USD 0.00001667 per GB-second in the worked examples of
    https://aws.amazon.com/lambda/pricing/ and in AWS's whitepaper "How AWS Pricing Works"
    (https://docs.aws.amazon.com/whitepapers/latest/how-aws-pricing-works/lambda.html); the
    tier's unrounded 0.0000166667 as transcribed from that page by Artillery's
    lib/platform/aws-lambda/prices.js (2.0.28). The page's own tables render client-side."""

    currency: str = "USD"  # of the prices, and so of the plan's serverless costs
    per_gb_second: float | None = 0.0000166667
    per_million_requests: float | None = 0.20
    # What GB-seconds are billed: busy (Lambda: each instance's start-up and the requests it
    # served, idle keep-alive free) or lifetime (instance-based billing: spawn to stop).
    billed_time: str = "busy"
    as_of: str = "2026-11-25"
    source: str = "https://aws.amazon.com/lambda/pricing/"


@dataclass
class CatalogConfig:
    """The servers the planner sizes for, and their prices."""

    name: str = "default"
    # The catalog file; null: the bundled conf/catalog/data/servers.yaml.
    path: str | None = None
    # Server id -> price. Servers without one are sized but not costed.
    prices: dict[str, PriceConfig] = field(default_factory=dict)
    # Pay-per-use prices the planner costs serverless usage at.
    serverless_pricing: ServerlessPricingConfig = field(default_factory=ServerlessPricingConfig)


# --- top level ---------------------------------------------------------------------------------


@dataclass
class BenchConfig:
    model: ModelConfig = MISSING
    backend: BackendConfig = MISSING
    optimization: OptimizationConfig = MISSING
    strategy: StrategyConfig = MISSING
    scenario: ScenarioConfig = MISSING
    catalog: CatalogConfig = MISSING
    plan: PlanConfig = field(default_factory=PlanConfig)
    # Exported ONNX files and other derived artefacts, keyed by content hash.
    cache_dir: str = "~/.cache/bench"
    # Samples from the model's evaluation inputs compared with the fp32 torch reference.
    accuracy_samples: int = 16
    # Lowest accepted accuracy against the fp32 reference: worst-case cosine similarity for
    # embedding models, top-1 agreement for classifiers. A point below it is INVALID, so no
    # recommendation picks it. null: no floor.
    accuracy_floor: float | None = None
    # Sample CPU, memory and GPU this often while a point runs.
    sample_interval_s: float = 0.2
    progress: bool = True
    report: bool = True
    # Free text carried into every row, e.g. the name of the machine or the experiment.
    tag: str = ""


SCHEMAS: dict[str, dict[str, type]] = {
    "model": {
        "minilm": MiniLMConfig,
        "mlp": MLPConfig,
        "efficientnet_lite0": EfficientNetLite0Config,
        "onnx_file": OnnxFileModelConfig,
        "torch_file": TorchFileModelConfig,
        "python": PythonModelConfig,
    },
    "backend": {
        "torch": TorchBackendConfig,
        "torch_compile": TorchCompileBackendConfig,
        "onnxruntime": OnnxRuntimeBackendConfig,
    },
    "optimization": {
        "none": NoOptimizationConfig,
        "int8_dynamic": Int8DynamicConfig,
        "int8_static": Int8StaticConfig,
        "bf16": Bf16Config,
        "fp16": Fp16Config,
        "prune_structured": PruneStructuredConfig,
        "prune_magnitude": PruneMagnitudeConfig,
    },
    "strategy": {
        "direct": DirectStrategyConfig,
        "http": HttpStrategyConfig,
        "grpc": GrpcStrategyConfig,
        "container": ContainerStrategyConfig,
        "edge": EdgeStrategyConfig,
        "serverless": ServerlessStrategyConfig,
        "endpoint": EndpointStrategyConfig,
    },
    "scenario": {
        "single_stream": SingleStreamScenarioConfig,
        "server": ServerScenarioConfig,
        "offline": OfflineScenarioConfig,
        "concurrency": ConcurrencyScenarioConfig,
        "slo_search": SloSearchScenarioConfig,
        "intermittent": IntermittentScenarioConfig,
        "bursty": BurstyScenarioConfig,
    },
    "catalog": {"default": CatalogConfig},
}


def register_configs() -> None:
    """Store every schema under `schema/<group>/<name>`; YAML presets extend them."""
    cs = ConfigStore.instance()
    cs.store(name="bench_schema", node=BenchConfig)
    for group, options in SCHEMAS.items():
        for name, node in options.items():
            cs.store(group=f"schema/{group}", name=name, node=node)


PERCENTILES = ("p50", "p90", "p95", "p99", "p999")
_GRAPH_LEVELS = ("disable", "basic", "extended", "all")
_CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
_COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def _require(ok: bool, field_name: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{field_name}: {message}")


def validate(cfg: Any) -> None:
    """Check values that types alone cannot; raise ConfigError naming the field and the fix."""
    sc = cfg.scenario
    _require(sc.batch_size >= 1, "scenario.batch_size", f"must be >= 1, got {sc.batch_size}")
    _require(sc.duration_s > 0, "scenario.duration_s", f"must be > 0, got {sc.duration_s}")
    _require(sc.warmup_s >= 0, "scenario.warmup_s", f"must be >= 0, got {sc.warmup_s}")
    _require(
        sc.stability_windows >= 1,
        "scenario.stability_windows",
        f"must be >= 1, got {sc.stability_windows}",
    )
    _require(
        sc.slo_percentile in PERCENTILES,
        "scenario.slo_percentile",
        f"accepted values are {', '.join(PERCENTILES)}; got {sc.slo_percentile!r}",
    )
    _require(
        sc.slo_ms is None or sc.slo_ms > 0,
        "scenario.slo_ms",
        f"must be > 0 or null, got {sc.slo_ms}",
    )
    if sc.name == "server":
        _require(sc.target_qps > 0, "scenario.target_qps", f"must be > 0, got {sc.target_qps}")
        _require(
            sc.connections is None or sc.connections >= 1,
            "scenario.connections",
            f"must be >= 1 or null, got {sc.connections}",
        )
    if sc.name == "concurrency":
        _require(
            len(sc.levels) > 0 and all(level >= 1 for level in sc.levels),
            "scenario.levels",
            f"must be a non-empty list of integers >= 1, got {list(sc.levels)}",
        )
    if sc.name == "slo_search":
        _require(
            sc.slo_ms is not None,
            "scenario.slo_ms",
            "slo_search needs a latency SLO to search for: set scenario.slo_ms",
        )
        _require(sc.tolerance > 0, "scenario.tolerance", f"must be > 0, got {sc.tolerance}")
        _require(sc.max_points >= 1, "scenario.max_points", f"must be >= 1, got {sc.max_points}")
    if sc.name == "intermittent":
        _require(sc.gap_s > 0, "scenario.gap_s", f"must be > 0, got {sc.gap_s}")
        _require(
            0 <= sc.jitter < 1, "scenario.jitter", f"must be in [0, 1) (of gap_s), got {sc.jitter}"
        )
    if sc.name == "bursty":
        _require(sc.burst_size >= 1, "scenario.burst_size", f"must be >= 1, got {sc.burst_size}")
        _require(sc.burst_qps > 0, "scenario.burst_qps", f"must be > 0, got {sc.burst_qps}")
        _require(sc.idle_s > 0, "scenario.idle_s", f"must be > 0, got {sc.idle_s}")
    if sc.name == "offline":
        _require(
            sc.requests is None or sc.requests >= 1,
            "scenario.requests",
            f"must be >= 1 or null, got {sc.requests}",
        )
    _require(
        cfg.accuracy_floor is None or -1.0 <= cfg.accuracy_floor <= 1.0,
        "accuracy_floor",
        f"must be between -1 and 1 (cosine or top-1 agreement) or null, got {cfg.accuracy_floor}",
    )
    opt = cfg.optimization
    plan = cfg.get("plan")
    if plan is not None:
        _require(plan.peak_qps > 0, "plan.peak_qps", f"must be > 0, got {plan.peak_qps}")
        _require(plan.slo_ms > 0, "plan.slo_ms", f"must be > 0, got {plan.slo_ms}")
        _require(plan.headroom >= 0, "plan.headroom", f"must be >= 0, got {plan.headroom}")
        _require(plan.min_servers >= 1, "plan.min_servers", f"must be >= 1, got {plan.min_servers}")
        _require(
            plan.percentile in PERCENTILES,
            "plan.percentile",
            f"accepted values are {', '.join(PERCENTILES)}; got {plan.percentile!r}",
        )
    if opt.name in ("prune_structured", "prune_magnitude"):
        _require(
            0.0 < opt.amount < 1.0,
            "optimization.amount",
            f"must be between 0 and 1 (the fraction removed), got {opt.amount}",
        )
    if opt.name == "int8_static":
        _require(
            opt.calibration_samples >= 1,
            "optimization.calibration_samples",
            f"must be >= 1, got {opt.calibration_samples}",
        )
        _require(
            opt.calibration_method in _CALIBRATION_METHODS,
            "optimization.calibration_method",
            f"accepted values are {', '.join(_CALIBRATION_METHODS)}; "
            f"got {opt.calibration_method!r}",
        )
    be = cfg.backend
    _require(
        be.threads is None or be.threads >= 1,
        "backend.threads",
        f"must be >= 1 or null, got {be.threads}",
    )
    _require(
        be.device in ("cpu", "cuda"), "backend.device", f"accepted: cpu, cuda; got {be.device!r}"
    )
    if be.name == "torch_compile":
        _require(
            be.mode in _COMPILE_MODES,
            "backend.mode",
            f"accepted values are {', '.join(_COMPILE_MODES)}; got {be.mode!r}",
        )
    if be.name == "onnxruntime":
        _require(
            be.graph_optimization in _GRAPH_LEVELS,
            "backend.graph_optimization",
            f"accepted values are {', '.join(_GRAPH_LEVELS)}; got {be.graph_optimization!r}",
        )
    _validate_strategy(cfg.strategy)
    if "catalog" in cfg:
        pricing = cfg.catalog.serverless_pricing
        _require(
            pricing.billed_time in _BILLED_TIMES,
            "catalog.serverless_pricing.billed_time",
            f"accepted values are {', '.join(_BILLED_TIMES)}; got {pricing.billed_time!r}",
        )
        _require(
            len(pricing.currency) == 3 and pricing.currency.isalpha(),
            "catalog.serverless_pricing.currency",
            f"must be an ISO 4217 code such as USD or EUR, got {pricing.currency!r}",
        )
        for name in ("per_gb_second", "per_million_requests"):
            price = getattr(pricing, name)
            _require(
                price is None or price >= 0,
                f"catalog.serverless_pricing.{name}",
                f"must be >= 0 or null (not costed), got {price}",
            )


_LOAD_BALANCERS = ("none", "nginx")
_PAYLOADS = ("binary", "json")
_ISOLATED = ("container", "edge")
_SERVED = ("http", "grpc", *_ISOLATED)
ISOLATIONS = ("auto", "podman", "cgroup", "affinity")


def _validate_strategy(st: Any) -> None:
    if st.name == "serverless":
        _validate_serverless(st)
    if st.name == "endpoint":
        _validate_endpoint(st)
    if st.name not in ("direct", *_SERVED):
        return
    _require(st.workers >= 1, "strategy.workers", f"must be >= 1, got {st.workers}")
    batching = st.batching
    _require(
        batching.max_batch_size >= 1,
        "strategy.batching.max_batch_size",
        f"must be >= 1, got {batching.max_batch_size}",
    )
    _require(
        batching.max_queue_delay_ms >= 0,
        "strategy.batching.max_queue_delay_ms",
        f"must be >= 0, got {batching.max_queue_delay_ms}",
    )
    if st.name == "direct":
        return
    _require(st.replicas >= 1, "strategy.replicas", f"must be >= 1, got {st.replicas}")
    _require(
        st.port == 0 or 1 <= st.port <= 65535 - st.replicas,
        "strategy.port",
        f"must be 0 (any free) or a port with {st.replicas} more free after it, got {st.port}",
    )
    _require(
        st.max_request_bytes >= 1024,
        "strategy.max_request_bytes",
        f"must be >= 1024, got {st.max_request_bytes}",
    )
    _require(
        st.start_timeout_s > 0, "strategy.start_timeout_s", f"must be > 0, got {st.start_timeout_s}"
    )
    _require(
        st.stop_timeout_s > 0, "strategy.stop_timeout_s", f"must be > 0, got {st.stop_timeout_s}"
    )
    if st.name in _ISOLATED:
        _validate_isolation(st)
    if st.name in ("http", *_ISOLATED):
        _require(
            st.load_balancer in _LOAD_BALANCERS,
            "strategy.load_balancer",
            f"accepted values are {', '.join(_LOAD_BALANCERS)}; got {st.load_balancer!r}",
        )
        _require(
            st.payload in _PAYLOADS,
            "strategy.payload",
            f"accepted values are {', '.join(_PAYLOADS)}; got {st.payload!r}",
        )
        _require(
            st.client_connections >= 1,
            "strategy.client_connections",
            f"must be >= 1, got {st.client_connections}",
        )


def _validate_isolation(st: Any) -> None:
    _require(
        st.isolation in ISOLATIONS,
        "strategy.isolation",
        f"accepted values are {', '.join(ISOLATIONS)}; got {st.isolation!r}",
    )
    if st.name == "container":
        _require(
            st.cpus is None or st.cpus >= 0.01,
            "strategy.cpus",
            f"must be >= 0.01 (cores; 0.5 = 500m) or null, got {st.cpus}",
        )
        _require(
            st.memory_mb is None or st.memory_mb >= 16,
            "strategy.memory_mb",
            f"must be >= 16 or null, got {st.memory_mb}",
        )
        return
    device = st.device
    _require(st.replicas == 1, "strategy.replicas", f"a device runs one worker, got {st.replicas}")
    _require(device.cores >= 1, "strategy.device.cores", f"must be >= 1, got {device.cores}")
    _require(device.threads >= 1, "strategy.device.threads", f"must be >= 1, got {device.threads}")
    _require(
        device.memory_mb >= 16,
        "strategy.device.memory_mb",
        f"must be >= 16, got {device.memory_mb}",
    )


_OVERFLOWS = ("queue", "reject")
_BILLED_TIMES = ("busy", "lifetime")
_ENDPOINT_PROTOCOLS = ("v2", "json")


def _validate_serverless(st: Any) -> None:
    _require(
        st.max_instances >= 1, "strategy.max_instances", f"must be >= 1, got {st.max_instances}"
    )
    _require(st.keep_alive_s >= 0, "strategy.keep_alive_s", f"must be >= 0, got {st.keep_alive_s}")
    _require(
        st.overflow in _OVERFLOWS,
        "strategy.overflow",
        f"accepted values are {', '.join(_OVERFLOWS)}; got {st.overflow!r}",
    )
    _require(
        st.memory_mb is None or st.memory_mb >= 1,
        "strategy.memory_mb",
        f"must be >= 1 or null (each instance's measured peak RSS), got {st.memory_mb}",
    )
    _require(
        st.start_timeout_s > 0, "strategy.start_timeout_s", f"must be > 0, got {st.start_timeout_s}"
    )
    _require(
        st.stop_timeout_s > 0, "strategy.stop_timeout_s", f"must be > 0, got {st.stop_timeout_s}"
    )
    _require(
        st.max_request_bytes >= 1024,
        "strategy.max_request_bytes",
        f"must be >= 1024, got {st.max_request_bytes}",
    )


def _validate_endpoint(st: Any) -> None:
    _require(
        st.url.startswith(("http://", "https://")),
        "strategy.url",
        f"must be an http:// or https:// URL, got {st.url!r}",
    )
    _require(
        st.protocol in _ENDPOINT_PROTOCOLS,
        "strategy.protocol",
        f"accepted values are {', '.join(_ENDPOINT_PROTOCOLS)}; got {st.protocol!r}",
    )
    _require(
        st.payload in _PAYLOADS,
        "strategy.payload",
        f"accepted values are {', '.join(_PAYLOADS)}; got {st.payload!r}",
    )
    if st.protocol == "json":
        _require(
            "{{inputs}}" in st.request_template,
            "strategy.request_template",
            "must hold the placeholder {{inputs}} where the request's items go",
        )
    _require(
        st.client_connections >= 1,
        "strategy.client_connections",
        f"must be >= 1, got {st.client_connections}",
    )
    _require(
        st.start_timeout_s > 0, "strategy.start_timeout_s", f"must be > 0, got {st.start_timeout_s}"
    )
