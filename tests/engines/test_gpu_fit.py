"""The GPU fit decision (reautod.engines.gpu_fit) from a fake NVML reading: there is no GPU
here, so the readings are made up and the model's shape is read from a real GGUF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reautod.config import Settings
from reautod.engines import registry
from reautod.engines.base import EngineState
from reautod.engines.gpu_fit import (
    COMPUTE_RESERVE_BYTES,
    MIB,
    GpuMemoryError,
    ModelShape,
    plan_for,
    plan_layers,
)
from reautod.engines.registry import EngineSet
from reautod.observability.gpu import GpuMemory
from tests.observability.test_gpu import FakeNvml, MemoryInfo

GIB = 1024**3
# Llama 3.1 8B Q4_K_M: 32 layers, 4096 wide, 32 heads, 8 KV heads, 4.9 GB
LLAMA_8B = ModelShape(file_bytes=4_920_000_000, n_layers=32, n_embd=4096, n_head=32,
                      n_head_kv=8)


def gpu(free_gib: float) -> GpuMemory:
    total = 80 * GIB
    free = int(free_gib * GIB)
    return GpuMemory(index=0, name="NVIDIA H100", total_bytes=total, used_bytes=total - free,
                     free_bytes=free)


def test_a_model_that_fits_goes_wholly_on_the_gpu() -> None:
    plan = plan_layers(LLAMA_8B, gpu(40), n_ctx=8192, requested=-1)
    assert plan.n_gpu_layers == -1 and plan.layers == 32
    # 8192 tokens of f16 KV at 1024 wide per layer: 32 MiB a layer, plus its weights
    assert plan.need_bytes == COMPUTE_RESERVE_BYTES + 33 * -(-LLAMA_8B.file_bytes // 33) \
        + 32 * 32 * MIB
    assert "32 layers on gpu0 NVIDIA H100" in plan.detail


def test_automatic_layers_are_as_many_as_the_free_memory_holds() -> None:
    plan = plan_layers(LLAMA_8B, gpu(3), n_ctx=8192, requested=-1)
    per_layer = LLAMA_8B.layer_bytes(8192)
    assert 0 < plan.layers < 32 and plan.n_gpu_layers == plan.layers
    assert plan.need_bytes <= 3 * GIB < plan.need_bytes + per_layer
    # a longer context takes more per layer: fewer fit
    assert plan_layers(LLAMA_8B, gpu(3), n_ctx=32768, requested=-1).layers < plan.layers


def test_what_does_not_fit_is_refused_with_the_numbers() -> None:
    with pytest.raises(GpuMemoryError, match=r"n_gpu_layers = 32 needs ~\d+ MiB on gpu0 NVIDIA "
                       r"H100, which has 3072 MiB free: \d+ of 32 layers fit"):
        plan_layers(LLAMA_8B, gpu(3), n_ctx=8192, requested=32)
    with pytest.raises(GpuMemoryError, match="does not fit on gpu0 NVIDIA H100: one layer") as err:
        plan_layers(LLAMA_8B, gpu(0.5), n_ctx=8192, requested=-1)
    assert err.value.code == "gpu_memory"
    assert plan_layers(LLAMA_8B, gpu(3), n_ctx=8192, requested=4).n_gpu_layers == 4


def test_the_shape_is_read_from_the_gguf_and_nvml_is_read_for_the_plan(
        test_models_dir: Path) -> None:
    path = test_models_dir / "test" / "llama-tiny.gguf"
    shape = ModelShape.read(path)
    assert shape.n_layers >= 1 and shape.n_embd > 0 and shape.file_bytes == path.stat().st_size
    nvml = FakeNvml([("NVIDIA H100", MemoryInfo(80 * GIB, 10 * GIB, 70 * GIB))])
    plan = plan_for(path, n_ctx=512, requested=-1, nvml=nvml)
    assert plan is not None and plan.n_gpu_layers == -1 and plan.free_bytes == 70 * GIB
    assert plan_for(path, n_ctx=512, requested=-1, nvml=None) is None  # no NVML: no plan
    with pytest.raises(GpuMemoryError, match=r"metadata has no llama\.attention\.head_count"):
        ModelShape.from_metadata({"general.architecture": "llama"}, 1)


async def test_a_model_too_big_for_the_gpu_is_refused_at_load_and_health_says_why(
        test_model_overrides: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    full = FakeNvml([("NVIDIA H100", MemoryInfo(80 * GIB, 80 * GIB - 100 * MIB, 100 * MIB))])
    monkeypatch.setattr(registry, "load_nvml", lambda: full)
    overrides = {**test_model_overrides, "models": {**test_model_overrides["models"],
                                                    "device": "cuda"}}
    engines = await EngineSet.load(Settings(**overrides), warm_up=False)
    try:
        llm = {h.name: h for h in engines.health()}["llm"]
        assert llm.state == EngineState.FAILED
        assert "GpuMemoryError: the model does not fit on gpu0 NVIDIA H100" in llm.detail
    finally:
        await engines.close()
