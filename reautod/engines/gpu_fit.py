"""How much of a GGUF model goes on the GPU, decided from NVML's free memory before loading.

The estimate, per transformer layer: its share of the weights (the file's size over the layers
plus one, for the embeddings and output head) and its KV cache at `n_ctx` (keys and values in
f16: 2 x n_ctx x n_embd x n_head_kv / n_head x 2 bytes); plus a fixed reserve for llama.cpp's
compute buffers and the CUDA context. `n_gpu_layers = -1` (the default) puts as many layers as
fit, all of them when they do; an explicit count that does not fit is refused, as is a model
of which not even one layer fits, with the numbers in the message.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reautod.errors import UnavailableError
from reautod.observability.gpu import GpuCollector, GpuMemory

log = logging.getLogger(__name__)

MIB = 1024**2
COMPUTE_RESERVE_BYTES = 768 * MIB  # compute buffers, CUDA context, scratch


class GpuMemoryError(UnavailableError):
    """The model does not fit in the GPU's free memory as asked."""

    code = "gpu_memory"


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs of a GGUF model (its metadata and file size)."""

    file_bytes: int
    n_layers: int
    n_embd: int
    n_head: int
    n_head_kv: int

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], file_bytes: int) -> ModelShape:
        arch = metadata.get("general.architecture", "llama")

        def num(key: str, default: int | None = None) -> int:
            value = metadata.get(f"{arch}.{key}")
            if value is None:
                if default is None:
                    raise GpuMemoryError(f"the model's metadata has no {arch}.{key}")
                return default
            return int(value)

        n_head = num("attention.head_count")
        return cls(file_bytes, num("block_count"), num("embedding_length"), n_head,
                   num("attention.head_count_kv", n_head))

    @classmethod
    def read(cls, path: Path) -> ModelShape:
        """From the GGUF file (its vocabulary only is loaded: fast, no weights; blocking)."""
        from llama_cpp import Llama

        model = Llama(model_path=str(path), vocab_only=True, verbose=False)
        try:
            metadata = dict(model.metadata)
        finally:
            model.close()
        return cls.from_metadata(metadata, path.stat().st_size)

    def layer_bytes(self, n_ctx: int) -> int:
        weights = self.file_bytes / (self.n_layers + 1)
        kv = 2 * n_ctx * self.n_embd * self.n_head_kv / self.n_head * 2
        return math.ceil(weights + kv)


@dataclass(frozen=True)
class GpuPlan:
    """The layers to offload (-1: all) and the numbers behind the choice."""

    n_gpu_layers: int
    layers: int  # how many of the model's layers that is
    need_bytes: int
    free_bytes: int
    device: str

    @property
    def detail(self) -> str:
        return (f"{self.layers} layers on {self.device}: ~{self.need_bytes / MIB:.0f} MiB of "
                f"{self.free_bytes / MIB:.0f} MiB free")


def plan_layers(shape: ModelShape, gpu: GpuMemory, *, n_ctx: int, requested: int,
                reserve_bytes: int = COMPUTE_RESERVE_BYTES) -> GpuPlan:
    """The layers of `shape` to put on `gpu` (see the module docstring); GpuMemoryError when
    `requested` layers do not fit, or (automatic) when not even one does."""
    per_layer = shape.layer_bytes(n_ctx)
    head = math.ceil(shape.file_bytes / (shape.n_layers + 1))  # embeddings and output head
    device = f"gpu{gpu.index} {gpu.name}"
    usable = gpu.free_bytes - reserve_bytes - head
    fitting = max(0, min(shape.n_layers, usable // per_layer)) if usable > 0 else 0

    def need(layers: int) -> int:
        return reserve_bytes + head + layers * per_layer

    if requested >= 0:
        layers = min(requested, shape.n_layers)
        if layers > fitting:
            raise GpuMemoryError(
                f"models.n_gpu_layers = {requested} needs ~{need(layers) / MIB:.0f} MiB on "
                f"{device}, which has {gpu.free_bytes / MIB:.0f} MiB free: {fitting} of "
                f"{shape.n_layers} layers fit (n_gpu_layers = -1 chooses that by itself)")
        return GpuPlan(requested, layers, need(layers), gpu.free_bytes, device)
    if fitting == 0:
        raise GpuMemoryError(
            f"the model does not fit on {device}: one layer needs ~{need(1) / MIB:.0f} MiB "
            f"with {n_ctx} tokens of context, {gpu.free_bytes / MIB:.0f} MiB are free (a "
            "smaller models.n_ctx or models.llm_parallel, a smaller model, or "
            "models.device = \"cpu\")")
    n_gpu_layers = -1 if fitting == shape.n_layers else fitting
    return GpuPlan(n_gpu_layers, fitting, need(fitting), gpu.free_bytes, device)


def plan_for(path: Path, *, n_ctx: int, requested: int, nvml: Any | None,
             shape: ModelShape | None = None) -> GpuPlan | None:
    """The plan for the GGUF at `path` on the first GPU NVML reports (`nvml`: the pynvml
    module or an object like it); None when NVML reports no GPU (llama.cpp decides alone)."""
    gpus = GpuCollector(nvml).read()
    if not gpus:
        log.warning("no GPU memory reading from NVML: n_gpu_layers = %d as configured",
                    requested)
        return None
    plan = plan_layers(shape or ModelShape.read(path), gpus[0], n_ctx=n_ctx, requested=requested)
    log.info("llm: %s", plan.detail)
    return plan
