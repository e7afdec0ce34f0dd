"""Samplers that run beside the measured work, the host fingerprint, and the host calibration."""

from bench.metrics.calibration import host_calibration
from bench.metrics.gpu import GpuSampler, gpu_names
from bench.metrics.host import host_fingerprint
from bench.metrics.resources import ResourceSampler

__all__ = ["GpuSampler", "ResourceSampler", "gpu_names", "host_calibration", "host_fingerprint"]
