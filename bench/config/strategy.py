"""Deployment strategy options. Each names its runner class (`runners.<strategy>`), built from
the whole run config and imported only when chosen: bench never imports runners itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from omegaconf import MISSING

from bench.registry import option
from bench.validation import Choice, at_least, positive, require


class LoadBalancer(Choice):
    none = "none"
    nginx = "nginx"


class Payload(Choice):
    binary = "binary"
    json = "json"


class Isolation(Choice):
    auto = "auto"
    podman = "podman"
    cgroup = "cgroup"
    affinity = "affinity"


class Overflow(Choice):
    queue = "queue"
    reject = "reject"


class GenerationBatching(Choice):
    continuous = "continuous"
    static = "static"
    none = "none"


class EndpointProtocol(Choice):
    v2 = "v2"
    json = "json"
    openai = "openai"


class OpenAIApi(Choice):
    completions = "completions"
    chat = "chat"


@dataclass
class OpenAIClientConfig:
    """How a generative model is asked, over OpenAI's API (`runners.openai_client`): streamed,
    `max_tokens` the output length drawn for each request, `stream_options.include_usage` so
    that the server counts the tokens where it can."""

    # completions: POST /v1/completions with `prompt`; chat: POST /v1/chat/completions with
    # the prompt as one user message.
    api: OpenAIApi = OpenAIApi.completions
    # Send `ignore_eos: true` (vLLM, SGLang, TGI's and llama.cpp's servers take it) so every
    # request produces the output length asked for; false for a server that rejects it (then
    # outputs may end early, and `output_tokens_mean` shows it).
    ignore_eos: bool = True
    # The served model's tokenizer, to cut prompts to exact lengths in tokens: a tokenizer.json
    # or a folder holding one. null: the model's own where the harness builds it, else prompts
    # are counted in words (each row says which, `input_tokens_counted_by`).
    tokenizer: str | None = None


@dataclass
class StrategyConfig:
    name: str = MISSING
    runner: ClassVar[str]
    # Whether the model is served on this host (its backend checked against what the host has
    # before measuring, bench.host_support); False for a service deployed elsewhere.
    serves_here: ClassVar[bool] = True

    def validate(self, at: str = "strategy") -> None:
        """Ranges that types alone cannot check."""


@dataclass
class BatchingConfig:
    """Dynamic batching, as Triton's dynamic batcher does it: a request waits up to
    `max_queue_delay_ms` (counted from the oldest waiting request) for others to join it, and a
    batch goes as soon as it holds `max_batch_size` items. Requests are never split; one larger
    than `max_batch_size` runs alone. `max_batch_size: 1` serves each request on its own."""

    max_batch_size: int = 1
    # 0 (Triton's default): batch only what queued while every predictor thread was busy.
    max_queue_delay_ms: float = 0.0

    def validate(self, at: str) -> None:
        at_least(self.max_batch_size, 1, f"{at}.max_batch_size")
        at_least(self.max_queue_delay_ms, 0, f"{at}.max_queue_delay_ms")


@dataclass
class CacheConfig:
    """A response cache in front of the model (`runners.cache`): a request whose inputs (its
    decoded items, hashed canonically) were answered before gets that answer without running
    the model. Least recently used entries go first once the cache holds `max_entries`
    responses or `max_mb` megabytes of them; both null: no cache."""

    max_entries: int | None = None
    max_mb: float | None = None

    @property
    def enabled(self) -> bool:
        return self.max_entries is not None or self.max_mb is not None

    def validate(self, at: str) -> None:
        at_least(self.max_entries, 1, f"{at}.max_entries", nullable=True)
        positive(self.max_mb, f"{at}.max_mb", nullable=True)
        require(
            self.max_entries is None or self.max_mb is None,
            f"{at}.max_mb",
            "bound the cache in entries (max_entries) or in MB (max_mb), not both",
        )


@option("strategy")
@dataclass
class DirectStrategyConfig(StrategyConfig):
    """In-process: the predictor called from a pool of worker threads."""

    name: str = "direct"
    # Threads calling the predictor; requests beyond them wait in the pool's queue.
    workers: int = 1
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    runner: ClassVar[str] = "runners.direct:DirectRunner"

    def validate(self, at: str = "strategy") -> None:
        at_least(self.workers, 1, f"{at}.workers")
        self.batching.validate(f"{at}.batching")
        self.cache.validate(f"{at}.cache")


@dataclass
class ProcessStrategyConfig(StrategyConfig):
    """What every strategy that runs worker processes shares: where they listen, how large a
    request may be, and how long they get to start and to stop."""

    # Where servers listen: 127.0.0.1 unless you mean to expose them.
    host: str = "127.0.0.1"
    # A request body (or gRPC message) larger than this gets an error; the server stays up.
    max_request_bytes: int = 32 * 1024 * 1024
    # Spawn to ready, per process (model exports on a cold cache take a while).
    start_timeout_s: float = 180.0
    # SIGTERM, then SIGKILL after this long.
    stop_timeout_s: float = 5.0
    # Prometheus metrics on every worker at GET /metrics (grpc: on an HTTP port of their own),
    # scraped at the start and end of each point into the rows' server_* columns; false: none,
    # to measure what they cost.
    metrics: bool = True

    def validate(self, at: str = "strategy") -> None:
        at_least(self.max_request_bytes, 1024, f"{at}.max_request_bytes")
        positive(self.start_timeout_s, f"{at}.start_timeout_s")
        positive(self.stop_timeout_s, f"{at}.stop_timeout_s")


@dataclass
class ServedStrategyConfig(ProcessStrategyConfig):
    """A model server per replica, in its own process, speaking the Open Inference Protocol
    (KServe v2) on loopback; the worker builds its predictor from this config."""

    replicas: int = 1
    # Predictor threads per replica (Triton's instance count); more requests wait in its queue.
    workers: int = 1
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    # One cache per replica, in its worker process, in front of its batcher.
    cache: CacheConfig = field(default_factory=CacheConfig)
    # First replica's port; the others take the next ones (and nginx, if any, the one after).
    # 0: the first free run of ports.
    port: int = 0
    # none: the client spreads requests round robin; nginx: through an nginx in front of the
    # replicas (HTTP/1.1 keep-alive for http, grpc_pass over HTTP/2 for grpc).
    load_balancer: LoadBalancer = LoadBalancer.none

    def validate(self, at: str = "strategy") -> None:
        super().validate(at)
        at_least(self.workers, 1, f"{at}.workers")
        self.batching.validate(f"{at}.batching")
        self.cache.validate(f"{at}.cache")
        at_least(self.replicas, 1, f"{at}.replicas")
        require(
            self.port == 0 or 1 <= self.port <= 65535 - self.replicas,
            f"{at}.port",
            f"must be 0 (any free) or a port with {self.replicas} more free after it, "
            f"got {self.port}",
        )


@dataclass
class GenerationConfig:
    """How a worker batches token-by-token generation (a generative model's OpenAI and Triton
    generate endpoints; `runners.generation`): `continuous` lets sequences join and leave the
    running batch between decode steps (iteration-level, as vLLM and TGI do), `static` runs
    each batch formed to its end before the next, `none` one sequence at a time."""

    batching: GenerationBatching = GenerationBatching.continuous
    # Sequences in the running batch at once (a static batch's size); more wait their turn.
    max_sequences: int = 32
    # Tokens one step may run: the prompts prefilled (padded to the longest) plus one per
    # running sequence; a longer prompt is refused (vLLM's max_num_batched_tokens).
    max_batched_tokens: int = 4096

    def validate(self, at: str) -> None:
        at_least(self.max_sequences, 1, f"{at}.max_sequences")
        # The least that serves a one-token prompt beside a full batch.
        at_least(self.max_batched_tokens, self.max_sequences + 1, f"{at}.max_batched_tokens")


@option("strategy")
@dataclass
class HttpStrategyConfig(ServedStrategyConfig):
    """uvicorn per replica; an aiohttp client spreads requests round robin over the replicas,
    or talks to an nginx in front of them (`load_balancer: nginx`)."""

    name: str = "http"
    # Tensors as Triton's binary extension (binary) or as JSON lists (json).
    payload: Payload = Payload.binary
    # A generative model is driven over the worker's OpenAI API, streamed: how it is asked.
    openai: OpenAIClientConfig = field(default_factory=OpenAIClientConfig)
    # The client's connection pool, all replicas together; a request past it waits, unseen by
    # the driver's late-send check, so keep it above the load's concurrency.
    client_connections: int = 1024
    # A generative model's token-by-token serving (the worker's /v1 and generate endpoints).
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    runner: ClassVar[str] = "runners.http:HttpRunner"

    def validate(self, at: str = "strategy") -> None:
        super().validate(at)
        at_least(self.client_connections, 1, f"{at}.client_connections")
        self.generation.validate(f"{at}.generation")


@option("strategy")
@dataclass
class GrpcStrategyConfig(ServedStrategyConfig):
    """grpcio's asyncio server per replica; a `grpc.aio` channel per replica, round robin, or
    one to an nginx in front of them (`load_balancer: nginx`)."""

    name: str = "grpc"
    runner: ClassVar[str] = "runners.grpc:GrpcRunner"


@dataclass
class IsolatedStrategyConfig(HttpStrategyConfig):
    """HTTP replicas of the worker, each inside isolation with real resource limits."""

    # podman (a container engine), cgroup (a worker process in its own v2 or v1 cgroups),
    # affinity (CPU affinity and RLIMIT_AS, no throttling counters), or auto: the first of
    # these that works here.
    isolation: Isolation = Isolation.auto


@option("strategy")
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
    runner: ClassVar[str] = "runners.container:ContainerRunner"

    def validate(self, at: str = "strategy") -> None:
        super().validate(at)
        at_least(self.cpus, 0.01, f"{at}.cpus", nullable=True, unit=" (cores; 0.5 = 500m)")
        at_least(self.memory_mb, 16, f"{at}.memory_mb", nullable=True)


@dataclass
class DeviceProfileConfig:
    """A constrained device: its cores (the worker is pinned to that many), its memory (a hard
    cap) and the intra-op threads the runtime uses there (they replace `backend.threads`)."""

    name: str = MISSING
    cores: int = 1
    memory_mb: int = 512
    threads: int = 1

    def validate(self, at: str) -> None:
        at_least(self.cores, 1, f"{at}.cores")
        at_least(self.threads, 1, f"{at}.threads")
        at_least(self.memory_mb, 16, f"{at}.memory_mb")


@option("strategy")
@dataclass
class EdgeStrategyConfig(IsolatedStrategyConfig):
    """One worker confined to a device profile (`strategy/device=tiny|small|rpi4`); a model
    that runs out of memory or time starting there is recorded as "does not fit"."""

    name: str = "edge"
    device: DeviceProfileConfig = field(default_factory=DeviceProfileConfig)
    start_timeout_s: float = 120.0
    runner: ClassVar[str] = "runners.edge:EdgeRunner"

    def validate(self, at: str = "strategy") -> None:
        super().validate(at)
        require(
            self.replicas == 1, f"{at}.replicas", f"a device runs one worker, got {self.replicas}"
        )
        self.device.validate(f"{at}.device")


@option("strategy")
@dataclass
class ServerlessStrategyConfig(ProcessStrategyConfig):
    """Scale to zero: an instance (a worker process, one predictor thread, no batching) is
    spawned when a request finds none idle, stays warm `keep_alive_s` after its last request,
    and serves one request at a time; at most `max_instances` exist at once. Usage is recorded
    (GB-seconds, requests); its price is the catalog's (`catalog.serverless_pricing`)."""

    name: str = "serverless"
    max_instances: int = 4
    # Real platforms keep an idle instance for minutes; seconds here, so that a benchmark of a
    # few minutes sees cold starts. Set your platform's.
    keep_alive_s: float = 5.0
    # A request arriving with `max_instances` busy waits for one (queue) or fails (reject).
    overflow: Overflow = Overflow.queue
    # Memory billed per instance, as a platform's configured memory size (Lambda: 128 to
    # 10,240 MB). null: each instance's own peak RSS, measured.
    memory_mb: int | None = None
    # Off here: an instance lives seconds, nobody scrapes it, and importing the metrics
    # library would add to every cold start.
    metrics: bool = False
    runner: ClassVar[str] = "runners.serverless:ServerlessRunner"

    def validate(self, at: str = "strategy") -> None:
        super().validate(at)
        at_least(self.max_instances, 1, f"{at}.max_instances")
        at_least(self.keep_alive_s, 0, f"{at}.keep_alive_s")
        at_least(
            self.memory_mb, 1, f"{at}.memory_mb", nullable=True,
            unit=" (null: each instance's measured peak RSS)",
        )  # fmt: skip


@option("strategy")
@dataclass
class EndpointStrategyConfig(StrategyConfig):
    """A service already deployed at `url`: the harness starts nothing, only sends requests and
    measures. `protocol: v2` speaks the Open Inference Protocol (Triton, KServe, MLServer, our
    workers) at `url`/v2/...; `protocol: json` POSTs `request_template` to `url` itself;
    `protocol: openai` streams generations from an OpenAI-compatible server (vLLM, TGI,
    llama.cpp's server, Ollama, SGLang) at `url`/v1/..."""

    name: str = "endpoint"
    url: str = "http://127.0.0.1:8000"
    # v2: the served model's name; null: model.name. openai: the `model` every request names,
    # as the server's GET /v1/models lists it (required).
    model_name: str | None = None
    protocol: EndpointProtocol = EndpointProtocol.v2
    # protocol=openai: how generations are asked for.
    openai: OpenAIClientConfig = field(default_factory=OpenAIClientConfig)
    # v2 tensors as JSON lists (json, every v2 server) or Triton's binary extension (binary).
    payload: Payload = Payload.json
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
    # A credential the service requires, never typed on the command line (which Hydra stores
    # in .hydra/): the name of an environment variable holding it, or a file holding it.
    token_env: str | None = None
    token_file: str | None = None
    # The header it is sent in: Authorization gets "Bearer <token>", any other the token alone.
    token_header: str = "Authorization"
    # Where the service's Prometheus metrics are (Triton: http://HOST:8002/metrics; TorchServe:
    # :8082/metrics; vLLM and our workers: the service's own /metrics), scraped at the start
    # and end of each point into the rows' server_* columns; null: not scraped.
    metrics_url: str | None = None
    runner: ClassVar[str] = "runners.endpoint:EndpointRunner"
    serves_here: ClassVar[bool] = False

    def validate(self, at: str = "strategy") -> None:
        require(
            self.url.startswith(("http://", "https://")),
            f"{at}.url",
            f"must be an http:// or https:// URL, got {self.url!r}",
        )
        if self.protocol == EndpointProtocol.openai:
            require(
                bool(self.model_name),
                f"{at}.model_name",
                "protocol=openai needs the served model's name, as GET <url>/v1/models lists it",
            )
        if self.protocol == EndpointProtocol.json:
            require(
                "{{inputs}}" in self.request_template,
                f"{at}.request_template",
                "must hold the placeholder {{inputs}} where the request's items go",
            )
        at_least(self.client_connections, 1, f"{at}.client_connections")
        positive(self.start_timeout_s, f"{at}.start_timeout_s")
        require(
            self.metrics_url is None or self.metrics_url.startswith(("http://", "https://")),
            f"{at}.metrics_url",
            f"must be an http:// or https:// URL or null, got {self.metrics_url!r}",
        )
        require(
            not (self.token_env and self.token_file),
            f"{at}.token_env",
            "give the token in an environment variable or a file (token_file), not both",
        )
