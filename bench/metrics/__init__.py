"""Samplers that run beside the measured work, and the host fingerprint."""

from bench.metrics.gpu import GpuSampler, gpu_names
from bench.metrics.host import host_fingerprint
from bench.metrics.resources import ResourceSampler

__all__ = ["GpuSampler", "ResourceSampler", "gpu_names", "host_fingerprint"]
