"""The package build's choices without building: which variant a build profile selects, the
llama.cpp flags each variant passes to uv, the CUDA runtime Depends, and the version's one source.

The CUDA build itself is not run by the suite (it needs the CUDA toolkit and about an hour on
2 cores); these tests pin what it would run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGING = REPO_ROOT / "packaging"
LOCK = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
LLAMA_SDIST = next(p for p in LOCK["package"] if p["name"] == "llama-cpp-python")["sdist"]["url"]


def build_venv(
    *args: str, path: str | None = None, cuda_home: str | None = None,
    wheels: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(Path.home())}
    if wheels is not None:
        env["REAUTOD_WHEEL_CACHE"] = str(wheels)
    if path is not None:
        env["PATH"] = path
    env.pop("CUDA_HOME", None)
    if cuda_home is not None:
        env["CUDA_HOME"] = cuda_home
    return subprocess.run([str(PACKAGING / "build-venv"), "--dry-run", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def fake_tool_dir(tmp_path: Path, name: str, script: str) -> str:
    """A PATH with the basics plus a stand-in `name` (uv, nvcc) that prints what it is."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f"#!/bin/sh\n{script}\n")
    tool.chmod(0o755)
    return f"{bin_dir}:/usr/bin:/bin"


def test_cpu_variant_syncs_the_lock_and_builds_llama_portable(tmp_path: Path) -> None:
    path = fake_tool_dir(tmp_path, "uv", "exit 0")
    result = build_venv("--variant", "cpu", "--dest", str(tmp_path / "v"), path=path,
                        wheels=tmp_path / "wheels")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "venv --relocatable --python /usr/bin/python3.11" in out
    assert ("sync --frozen --no-dev --no-editable --no-progress --link-mode=copy --python "
            "/usr/bin/python3.11 --no-install-package llama-cpp-python") in out
    # The wheel is built from the sdist uv.lock pins, with the portable CPU flags only.
    assert LLAMA_SDIST in out
    assert "--config-setting cmake.define.GGML_NATIVE=OFF --out-dir" in out
    assert "GGML_CUDA" not in out
    assert re.search(r"pip install --no-deps .*/wheels/llama-cpp-python-[\d.]+-cpu-\w+/", out)


def fake_toolkit(tmp_path: Path, *, cublas: bool = True) -> str:
    """uv and a CUDA toolkit stand-in: bin/nvcc, and lib64/libcublas.so when `cublas`."""
    fake_tool_dir(tmp_path, "uv", "exit 0")
    path = fake_tool_dir(tmp_path, "nvcc", "echo 'Cuda compilation tools, release 12.6, V12.6.85'")
    (tmp_path / "lib64").mkdir()
    if cublas:
        (tmp_path / "lib64" / "libcublas.so.12").touch()
    return path


def test_cuda_variant_builds_llama_with_cuda_into_its_own_cache_entry(tmp_path: Path) -> None:
    path = fake_toolkit(tmp_path)
    result = build_venv("--variant", "cuda", "--dest", str(tmp_path / "v"), path=path,
                        wheels=tmp_path / "wheels")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for define in ("GGML_NATIVE=OFF", "GGML_CUDA=ON", "CMAKE_CUDA_ARCHITECTURES=75;80;86;89;90"):
        assert f"--config-setting cmake.define.{define}" in out
    assert f"CUDACXX={tmp_path}/bin/nvcc" in out
    cuda_dir = re.search(r"wheels/(llama-cpp-python-[\d.]+-cuda-\w+)/", out)
    assert cuda_dir is not None
    cpu = build_venv("--variant", "cpu", "--dest", str(tmp_path / "v"), path=path,
                     wheels=tmp_path / "wheels").stdout
    assert cuda_dir.group(1) not in cpu  # never the CPU wheel


def test_a_cached_llama_wheel_is_reused_not_rebuilt(tmp_path: Path) -> None:
    path = fake_tool_dir(tmp_path, "uv", "exit 0")
    first = build_venv("--variant", "cpu", "--dest", str(tmp_path / "v"), path=path,
                       wheels=tmp_path / "wheels").stdout
    cached = Path(re.search(r"^\+ mv \S+ (\S+)$", first, re.MULTILINE).group(1))  # type: ignore[union-attr]
    cached.mkdir(parents=True)
    (cached / "llama_cpp_python-0.0-py3-none-linux_x86_64.whl").touch()
    again = build_venv("--variant", "cpu", "--dest", str(tmp_path / "v"), path=path,
                       wheels=tmp_path / "wheels").stdout
    assert "build --wheel" not in again and "pip install --no-deps" in again


def test_wheel_only_builds_the_cached_wheel_and_prints_its_path(tmp_path: Path) -> None:
    """`make venv` installs the wheel the .deb build uses: one compile per machine for both."""
    path = fake_tool_dir(tmp_path, "uv", "exit 0")
    full = build_venv("--variant", "cpu", "--dest", str(tmp_path / "v"), path=path,
                      wheels=tmp_path / "wheels").stdout
    result = build_venv("--variant", "cpu", "--wheel-only", path=path, wheels=tmp_path / "wheels")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "--config-setting cmake.define.GGML_NATIVE=OFF --out-dir" in result.stdout
    assert "venv --relocatable" not in result.stdout and "sync --frozen" not in result.stdout
    cached = re.search(r"^\+ mv \S+ (\S+)$", full, re.MULTILINE)
    assert cached is not None and lines[-1] == f"{cached.group(1)}/llama_cpp_python-*.whl"
    assert build_venv("--variant", "cpu", path=path).returncode == 2  # a venv needs --dest


def test_cuda_variant_without_cublas_says_what_to_install(tmp_path: Path) -> None:
    path = fake_toolkit(tmp_path, cublas=False)
    result = build_venv("--variant", "cuda", "--dest", str(tmp_path / "v"), path=path,
                        cuda_home=str(tmp_path))
    assert result.returncode == 1
    assert "has no cuBLAS" in result.stderr and "libcublas-dev" in result.stderr


def test_cuda_variant_without_a_toolkit_says_what_to_install(tmp_path: Path) -> None:
    path = fake_tool_dir(tmp_path, "uv", "exit 0")
    result = build_venv("--variant", "cuda", "--dest", str(tmp_path / "v"), path=path,
                        cuda_home=str(tmp_path / "no-cuda"))
    assert result.returncode == 1
    assert "needs the CUDA toolkit (nvcc)" in result.stderr
    assert f"CUDA_HOME={tmp_path / 'no-cuda'}" in result.stderr


def test_unknown_variant_is_refused(tmp_path: Path) -> None:
    path = fake_tool_dir(tmp_path, "uv", "exit 0")
    result = build_venv("--variant", "rocm", "--dest", str(tmp_path / "v"), path=path)
    assert result.returncode == 2 and "cpu or cuda" in result.stderr


@pytest.mark.parametrize(
    ("version", "expected"),
    [("12.6", "cuda-cudart-12-6, libcublas-12-6"), ("13.0", "cuda-cudart-13-0, libcublas-13-0")],
)
def test_cuda_depends_names_nvidias_runtime_packages(version: str, expected: str) -> None:
    out = subprocess.run([str(PACKAGING / "cuda-depends"), version], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    assert out.strip() == expected


def test_cuda_depends_refuses_what_is_not_a_version() -> None:
    result = subprocess.run([str(PACKAGING / "cuda-depends"), "twelve"], capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.returncode == 1 and "cannot read a CUDA version" in result.stderr


@pytest.mark.skipif(shutil.which("dh") is None, reason="debhelper not installed")
@pytest.mark.parametrize(("profiles", "package", "variant"),
                         [("", "reautod", "cpu"), ("cuda", "reautod-cuda", "cuda")])
def test_the_build_profile_selects_the_package(profiles: str, package: str, variant: str) -> None:
    """debian/rules' variables as make evaluates them, and dpkg's view of which package builds."""
    env = {**os.environ, "DEB_BUILD_PROFILES": profiles}
    env.pop("MAKEFLAGS", None)
    printed = subprocess.run(
        ["make", "--no-print-directory", "-f", "debian/rules", "-f", "-", "show"],
        input="show:\n\t@echo $(PACKAGE) $(VARIANT) $(VENV)\n", cwd=PACKAGING, env=env,
        capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert printed[:2] == [package, variant]
    assert printed[2].endswith(f"debian/{package}/opt/reautod")
    listed = subprocess.run(["dh_listpackages"], cwd=PACKAGING, env=env, capture_output=True,
                            text=True, timeout=60, check=True).stdout.split()
    assert listed == [package]


def test_one_version_in_pyproject_and_changelog() -> None:
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), "semantic version"
    changelog = (REPO_ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", changelog,
                     re.MULTILINE), f"CHANGELOG.md has no section for {version}"
    assert "## [Unreleased]" in changelog


def test_both_packages_recommend_portaudio_for_reautoctl_talk() -> None:
    """Only `reautoctl talk`'s sound card needs PortAudio (sounddevice loads it): recommended,
    not required, by both variants; the daemon runs without it."""
    paragraphs = [dict(re.findall(r"^([\w-]+):\s*(.*)$", block, re.MULTILINE))
                  for block in (PACKAGING / "debian" / "control").read_text().split("\n\n")]
    binaries = {p["Package"]: p for p in paragraphs if "Package" in p}
    assert set(binaries) == {"reautod", "reautod-cuda"}
    for name, fields in binaries.items():
        recommends = [r.strip().split()[0] for r in fields.get("Recommends", "").split(",")]
        assert "libportaudio2" in recommends, name
        assert "libportaudio2" not in fields["Depends"], name
