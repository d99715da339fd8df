"""The curated model sets (profiles) and where each engine's model lives in the models directory.

Layout under the models directory (`settings.models_dir()`):

    gpu:  faster-whisper-small.en/         Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf
    cpu:  faster-whisper-base.en/          qwen2.5-1.5b-instruct-q4_k_m.gguf
    both: piper/en_US-lessac-medium.onnx (+ .onnx.json)
    test: test/whisper-tiny/  test/llama-tiny.gguf  test/piper-tiny.onnx (+ .onnx.json)

`models.stt` / `models.llm` / `models.tts` in the config override a profile's entry with a path
relative to the models directory (or absolute).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reautod.config import Settings
from reautod.engines import testmodels

EngineName = Literal["stt", "llm", "tts"]
ProfileName = Literal["gpu", "cpu", "test"]
ENGINE_NAMES: tuple[EngineName, ...] = ("stt", "llm", "tts")
PROFILE_NAMES: tuple[ProfileName, ...] = ("gpu", "cpu", "test")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a Hugging Face repository and where it goes under the models directory.

    `sha256` is pinned where it was known when the catalog was written; otherwise the download is
    verified against what the hub states for the file (see `reautod.engines.pull`).
    """

    repo: str
    path: str  # inside the repository
    dest: str  # relative to the models directory
    revision: str = "main"
    sha256: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """What one engine loads in one profile: a path under the models directory and its source."""

    engine: EngineName
    name: str
    load_path: str  # relative to the models directory: a directory (stt) or a file (llm, tts)
    files: tuple[RemoteFile, ...] = ()  # empty for built (test) models
    build: Callable[[Path], Path] | None = None  # builds the model at the given path (test)

    def path_in(self, models_dir: Path) -> Path:
        return models_dir / self.load_path

    @property
    def source(self) -> str:
        if self.build is not None:
            return "built locally (random weights)"
        repos = sorted({f.repo for f in self.files})
        return ", ".join(f"hf:{r}" for r in repos)


def _whisper(size: str) -> ModelSpec:
    repo = f"Systran/faster-whisper-{size}"
    folder = f"faster-whisper-{size}"
    # The files faster-whisper's own downloader fetches (preprocessor_config.json is absent from
    # these English-only repositories; the defaults apply).
    names = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
    return ModelSpec(
        engine="stt",
        name=f"faster-whisper {size}",
        load_path=folder,
        files=tuple(RemoteFile(repo, n, f"{folder}/{n}") for n in names),
    )


_PIPER_LESSAC = ModelSpec(
    engine="tts",
    name="piper en_US-lessac-medium",
    load_path="piper/en_US-lessac-medium.onnx",
    files=tuple(
        RemoteFile("rhasspy/piper-voices", f"en/en_US/lessac/medium/{n}", f"piper/{n}")
        for n in ("en_US-lessac-medium.onnx", "en_US-lessac-medium.onnx.json")
    ),
)

PROFILES: dict[ProfileName, dict[EngineName, ModelSpec]] = {
    "gpu": {
        "stt": _whisper("small.en"),
        "llm": ModelSpec(
            engine="llm",
            name="Llama-3.1-8B-Instruct Q4_K_M",
            load_path="Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf",
            files=(RemoteFile(
                "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
                "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf",
                "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf",
            ),),
        ),
        "tts": _PIPER_LESSAC,
    },
    "cpu": {
        "stt": _whisper("base.en"),
        "llm": ModelSpec(
            engine="llm",
            name="Qwen2.5-1.5B-Instruct Q4_K_M",
            load_path="qwen2.5-1.5b-instruct-q4_k_m.gguf",
            files=(RemoteFile(
                "Qwen/Qwen2.5-1.5B-Instruct-GGUF",
                "qwen2.5-1.5b-instruct-q4_k_m.gguf",
                "qwen2.5-1.5b-instruct-q4_k_m.gguf",
            ),),
        ),
        "tts": _PIPER_LESSAC,
    },
    "test": {
        "stt": ModelSpec("stt", "tiny whisper (random)", "test/whisper-tiny",
                         build=testmodels.build_tiny_whisper),
        "llm": ModelSpec("llm", "tiny llama (random)", "test/llama-tiny.gguf",
                         build=testmodels.build_tiny_llama),
        "tts": ModelSpec("tts", "tiny piper voice (random)", "test/piper-tiny.onnx",
                         build=testmodels.build_tiny_piper),
    },
}


@dataclass(frozen=True)
class ResolvedModel:
    """The model one engine will load with the current settings."""

    engine: EngineName
    profile: str  # a profile name, or "override" when models.<engine> is set
    name: str
    path: Path
    spec: ModelSpec | None  # None for an override

    def present(self) -> bool:
        return model_present(self.engine, self.path)

    def fix_command(self) -> str:
        """The command that installs this model."""
        if self.spec is None:
            return f"install the model at {self.path} (set by models.{self.engine})"
        if self.spec.build is not None:
            return "reautoctl models pull --test"
        return f"reautoctl models pull --profile {self.profile}"


def model_present(engine: EngineName, path: Path) -> bool:
    """Whether the files an engine needs are there (a Piper voice needs its `.onnx.json` too)."""
    if engine == "stt":
        return (path / "model.bin").is_file() and (path / "config.json").is_file()
    if engine == "tts":
        return path.is_file() and Path(f"{path}.json").is_file()
    return path.is_file()


def resolve(settings: Settings, engine: EngineName) -> ResolvedModel:
    """Which model `engine` loads: the `models.<engine>` override, else the profile's entry."""
    models_dir = settings.models_dir()
    override: str | None = getattr(settings.models, engine)
    if override:
        path = Path(override)
        return ResolvedModel(engine, "override", path.name, path if path.is_absolute()
                             else models_dir / path, None)
    profile = settings.models.profile
    spec = PROFILES[profile][engine]
    return ResolvedModel(engine, profile, spec.name, spec.path_in(models_dir), spec)


def disk_size(path: Path) -> int | None:
    """Bytes used by a model file (with its `.json` companion) or directory; None if absent."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    if path.is_file():
        companion = Path(f"{path}.json")
        return path.stat().st_size + (companion.stat().st_size if companion.is_file() else 0)
    return None


def build_test_models(models_dir: Path, *, force: bool = False) -> dict[EngineName, Path]:
    """Build the random-weight "test" profile into `models_dir`; skips those already present."""
    built: dict[EngineName, Path] = {}
    for engine, spec in PROFILES["test"].items():
        path = spec.path_in(models_dir)
        if force or not model_present(engine, path):
            assert spec.build is not None
            spec.build(path)
        built[engine] = path
    return built
