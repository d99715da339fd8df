from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import generate_latest

from reautod.observability.gpu import GpuCollector, load_nvml
from reautod.observability.metrics import Metrics, sample_names
from reautod.observability.metrics_summary import summarize


class NVMLError(Exception):
    pass


@dataclass
class MemoryInfo:
    total: int
    used: int
    free: int


class FakeNvml:
    """Implements the NVML functions GpuCollector calls; records them."""

    NVMLError = NVMLError

    def __init__(self, gpus: list[tuple[str | bytes, MemoryInfo]], *, init_error: bool = False):
        self.gpus = gpus
        self.init_error = init_error
        self.fail_queries = False
        self.calls: list[str] = []

    def nvmlInit(self) -> None:
        self.calls.append("init")
        if self.init_error:
            raise NVMLError("Driver Not Loaded")

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self) -> int:
        if self.fail_queries:
            raise NVMLError("GPU is lost")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:
        return ("handle", index)

    def nvmlDeviceGetName(self, handle: Any) -> str | bytes:
        return self.gpus[handle[1]][0]

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> MemoryInfo:
        return self.gpus[handle[1]][1]


GIB = 1024**3


def metrics_with(nvml: Any) -> tuple[Metrics, GpuCollector]:
    metrics = Metrics()
    collector = GpuCollector(nvml)
    metrics.register(collector)
    return metrics, collector


def test_no_library_means_no_gpu_and_a_clean_scrape() -> None:
    metrics, collector = metrics_with(None)
    assert not collector.present
    assert collector.error == "nvidia-ml-py not installed"
    text = generate_latest(metrics.registry).decode()
    assert "reautod_gpu_present 0.0" in text
    assert "reautod_gpu_memory_used_bytes{" not in text
    # the names still exist, so dashboards and alerts that reference them stay valid
    assert "reautod_gpu_memory_free_bytes" in sample_names(metrics.registry)


def test_driver_not_loaded_is_absent_gracefully() -> None:
    fake = FakeNvml([], init_error=True)
    metrics, collector = metrics_with(fake)
    assert not collector.present
    assert collector.error is not None and "Driver Not Loaded" in collector.error
    assert metrics.registry.get_sample_value("reautod_gpu_present") == 0
    collector.close()
    assert fake.calls == ["init"]  # never shut down what never started


def test_present_gpus_report_memory_per_device() -> None:
    fake = FakeNvml([
        (b"NVIDIA H100", MemoryInfo(total=80 * GIB, used=30 * GIB, free=50 * GIB)),
        ("NVIDIA L4", MemoryInfo(total=24 * GIB, used=1 * GIB, free=23 * GIB)),
    ])
    metrics, collector = metrics_with(fake)
    assert collector.present
    get = metrics.registry.get_sample_value
    assert get("reautod_gpu_present") == 1
    assert get("reautod_gpu_memory_used_bytes", {"gpu": "0"}) == 30 * GIB
    assert get("reautod_gpu_memory_free_bytes", {"gpu": "0"}) == 50 * GIB
    assert get("reautod_gpu_memory_total_bytes", {"gpu": "1"}) == 24 * GIB
    assert [g.name for g in collector.read()] == ["NVIDIA H100", "NVIDIA L4"]
    assert collector.used_share() == 30 / 80  # the fullest device: what the dialer paces by
    assert summarize(metrics.registry).model_dump()["gpu"] == [
        {"gpu": "0", "used_bytes": 30 * GIB, "free_bytes": 50 * GIB},
        {"gpu": "1", "used_bytes": 1 * GIB, "free_bytes": 23 * GIB},
    ]
    collector.close()
    assert fake.calls == ["init", "shutdown"]
    assert not collector.present


def test_a_failing_query_does_not_break_the_scrape() -> None:
    fake = FakeNvml([("NVIDIA H100", MemoryInfo(total=80 * GIB, used=1, free=80 * GIB - 1))])
    metrics, collector = metrics_with(fake)
    fake.fail_queries = True
    assert collector.used_share() is None  # a lost GPU says nothing about memory
    text = generate_latest(metrics.registry).decode()
    assert "reautod_gpu_present 0.0" in text
    assert "reautod_live_calls 0.0" in text
    assert collector.error is not None and "GPU is lost" in collector.error
    fake.fail_queries = False
    assert metrics.registry.get_sample_value("reautod_gpu_present") == 1
    assert collector.error is None


def test_the_real_library_on_this_machine() -> None:
    # With or without a GPU here, the real pynvml must not raise into a scrape.
    nvml = load_nvml()
    metrics, collector = metrics_with(nvml)
    present = metrics.registry.get_sample_value("reautod_gpu_present")
    assert present == (1.0 if collector.read() else 0.0)
    collector.close()


async def test_health_check_for_the_daemon() -> None:
    fake = FakeNvml([("NVIDIA H100", MemoryInfo(total=80 * GIB, used=20 * GIB, free=60 * GIB))])
    collector = GpuCollector(fake)
    assert await collector.health_check() == (True, "gpu0 NVIDIA H100: 20.0 of 80.0 GiB used")
    fake.fail_queries = True
    ok, detail = await collector.health_check()
    assert not ok and "GPU is lost" in detail

    absent = GpuCollector(None)
    assert await absent.health_check() == (True, "no GPU (nvidia-ml-py not installed): CPU inference")
    ok, detail = await absent.health_check(required=True)
    assert not ok and "models.device = cuda" in detail
