"""GPU memory per device via NVML (`pynvml` from nvidia-ml-py), read at scrape time.

Without a GPU, driver or library the collector reports `reautod_gpu_present 0` and no memory
samples; it never raises into a scrape. NVML is queried from the scrape's thread (the metrics
server's), never from the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuMemory:
    index: int
    name: str
    total_bytes: int
    used_bytes: int
    free_bytes: int

    def to_wire(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "total_bytes": self.total_bytes,
                "used_bytes": self.used_bytes, "free_bytes": self.free_bytes}


def load_nvml() -> Any | None:
    """The `pynvml` module, or None when nvidia-ml-py is not installed."""
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


class GpuCollector(Collector):
    """Prometheus collector of GPU memory; `nvml` is the `pynvml` module or an object like it.

    NVML calls used: nvmlInit, nvmlShutdown, nvmlDeviceGetCount, nvmlDeviceGetHandleByIndex,
    nvmlDeviceGetName, nvmlDeviceGetMemoryInfo (.total/.used/.free), and the NVMLError class.
    """

    def __init__(self, nvml: Any | None) -> None:
        self._nvml = nvml
        self._lock = threading.Lock()
        self._initialised = False
        self.error: str | None = None
        if nvml is None:
            self.error = "nvidia-ml-py not installed"
            return
        try:
            nvml.nvmlInit()
            self._initialised = True
        except Exception as err:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...: no GPU here
            self.error = f"NVML unavailable: {err}"
            logger.info("no GPU metrics: %s", self.error)

    @property
    def present(self) -> bool:
        return self._initialised

    def read(self) -> list[GpuMemory]:
        """Memory of every GPU now; empty without a GPU or when NVML fails this time."""
        if not self._initialised:
            return []
        nvml = self._nvml
        assert nvml is not None  # for mypy: initialised implies a module
        with self._lock:
            try:
                devices = []
                for index in range(nvml.nvmlDeviceGetCount()):
                    handle = nvml.nvmlDeviceGetHandleByIndex(index)
                    name = nvml.nvmlDeviceGetName(handle)
                    info = nvml.nvmlDeviceGetMemoryInfo(handle)
                    devices.append(GpuMemory(
                        index=index,
                        name=name.decode() if isinstance(name, bytes) else str(name),
                        total_bytes=int(info.total), used_bytes=int(info.used),
                        free_bytes=int(info.free)))
            except nvml.NVMLError as err:
                # a GPU that fell off the bus must not break the scrape of everything else
                self.error = f"NVML query failed: {err}"
                logger.warning("GPU memory query failed: %s", err)
                return []
        self.error = None
        return devices

    def used_share(self) -> float | None:
        """The fullest GPU's memory in use (0..1), or None without a GPU (NVML takes
        microseconds: the dialer asks on the loop)."""
        shares = [d.used_bytes / d.total_bytes for d in self.read() if d.total_bytes > 0]
        return max(shares, default=None)

    async def health_check(self, *, required: bool = False) -> tuple[bool, str]:
        """(ok, detail) for the daemon's `health`: a missing GPU fails only when `required`
        (models.device = "cuda"); NVML is read in a thread."""
        devices = await asyncio.to_thread(self.read)
        if devices:
            return True, "; ".join(
                f"gpu{d.index} {d.name}: {d.used_bytes / 2**30:.1f} of "
                f"{d.total_bytes / 2**30:.1f} GiB used" for d in devices)
        if self.present:
            return False, self.error or "NVML reports no GPU"
        if required:
            return False, f"no GPU ({self.error}) but models.device = cuda"
        return True, f"no GPU ({self.error}): CPU inference"

    def describe(self) -> Iterator[Metric]:
        yield from self._families([])

    def collect(self) -> Iterator[Metric]:
        yield from self._families(self.read())

    def _families(self, devices: list[GpuMemory]) -> Iterator[Metric]:
        present = GaugeMetricFamily("reautod_gpu_present", "1 when NVML reports at least one GPU")
        present.add_metric([], 1.0 if devices else 0.0)
        used = GaugeMetricFamily(
            "reautod_gpu_memory_used_bytes", "GPU memory in use", labels=["gpu"])
        free = GaugeMetricFamily("reautod_gpu_memory_free_bytes", "GPU memory free", labels=["gpu"])
        total = GaugeMetricFamily(
            "reautod_gpu_memory_total_bytes", "GPU memory installed", labels=["gpu"])
        for d in devices:
            used.add_metric([str(d.index)], d.used_bytes)
            free.add_metric([str(d.index)], d.free_bytes)
            total.add_metric([str(d.index)], d.total_bytes)
        yield from (present, used, free, total)

    def close(self) -> None:
        if self._initialised and self._nvml is not None:
            with self._lock:
                try:
                    self._nvml.nvmlShutdown()
                except self._nvml.NVMLError as err:
                    logger.debug("nvmlShutdown failed: %s", err)
                self._initialised = False
