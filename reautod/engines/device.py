"""Which device the engines run on, decided once from `models.device`."""

from __future__ import annotations

import logging
from typing import Literal

log = logging.getLogger(__name__)

Device = Literal["cpu", "cuda"]


def cuda_available() -> bool:
    """True when CTranslate2 sees a CUDA device (its probes raise on a machine without one)."""
    try:
        import ctranslate2

        if ctranslate2.get_cuda_device_count() < 1:
            return False
        ctranslate2.get_supported_compute_types("cuda")
    except Exception as err:  # no driver, no libcuda: simply no GPU here
        log.debug("no usable CUDA device: %s", err)
        return False
    return True


def resolve_device(setting: Literal["auto", "cpu", "cuda"]) -> Device:
    if setting == "auto":
        return "cuda" if cuda_available() else "cpu"
    return setting


def whisper_compute_type(device: Device) -> str:
    """float16 on CUDA (int8 mixes are reported to crash with cuBLAS 13), int8 on CPU."""
    return "float16" if device == "cuda" else "int8"
