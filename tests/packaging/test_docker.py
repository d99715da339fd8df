"""docker/: the Dockerfile and the compose file, checked as far as a machine with no Docker
engine allows (only the client is here, with no compose plugin, so nothing is built or run):
hadolint on the Dockerfile, the compose file against the Compose Specification's JSON schema
(check-jsonschema's vendored copy), and what neither tool checks: every stage and path the two
files name exists, and the daemon accepts the environment compose gives it."""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from reautod.config import load_settings
from reautod.environment import KNOWN_DEFAULT_SECRETS
from reautod.security.keys import load_key_ring
from tests.packaging.tools import deploy_tools

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO_ROOT / "docker"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
COMPOSE = DOCKER_DIR / "compose.yaml"


@dataclass
class Stage:
    name: str
    base: str
    copies: list[tuple[str | None, list[str]]] = field(default_factory=list)  # (--from, sources)


def parse_dockerfile(text: str) -> list[Stage]:
    """FROM stages and their COPY sources; continuation lines joined, comments dropped."""
    logical = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    stages: list[Stage] = []
    for line in logical.splitlines():
        words = shlex.split(line) if line.strip() else []
        if not words:
            continue
        op = words[0].upper()
        if op == "FROM":
            name = words[3] if len(words) >= 4 and words[2].upper() == "AS" else ""
            stages.append(Stage(name, words[1]))
        elif op == "COPY":
            flags = [w for w in words[1:] if w.startswith("--")]
            source = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            paths = [w for w in words[1:] if not w.startswith("--")]
            stages[-1].copies.append((source, paths[:-1]))
    return stages


@pytest.fixture(scope="module")
def tools() -> Path:
    return deploy_tools()


def test_hadolint_passes(tools: Path) -> None:
    result = subprocess.run([str(tools / "hadolint"), "--config", str(DOCKER_DIR / ".hadolint.yaml"),
                             "--no-color", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_matches_the_compose_spec(tools: Path) -> None:
    result = subprocess.run([str(tools / "check-jsonschema"), "--builtin-schema",
                             "vendor.compose-spec", str(COMPOSE)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_stages_and_copied_paths_exist() -> None:
    stages = parse_dockerfile(DOCKERFILE.read_text())
    names = [s.name for s in stages]
    assert {"build-base", "venv-cpu", "venv-cuda", "runtime-base", "cpu", "cuda"} <= set(names)
    assert names[-1] == "cpu"  # `docker build` without --target gives the CPU image
    for index, stage in enumerate(stages):
        earlier = names[:index]
        if not stage.base.startswith(("debian:", "ghcr.io/")):
            assert stage.base in earlier, f"{stage.name} builds on unknown {stage.base}"
        for source, paths in stage.copies:
            if source is not None:
                assert source in earlier, f"{stage.name} copies from unknown stage {source}"
                continue
            for path in paths:
                assert (REPO_ROOT / path).exists(), f"{stage.name}: COPY {path} is missing"
    cuda = stages[names.index("cuda")]
    assert ("venv-cuda", ["/opt/reautod"]) in cuda.copies
    assert "--variant cuda" in DOCKERFILE.read_text()


def test_the_build_stage_copies_every_source_of_the_wheel() -> None:
    """What hatch puts in the wheel (pyproject.toml): its packages and force-included folders."""
    wheel = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"][
        "targets"]["wheel"]
    needed = {*wheel["packages"], *wheel.get("force-include", {})}
    assert "migrations" in needed
    base = next(s for s in parse_dockerfile(DOCKERFILE.read_text()) if s.name == "build-base")
    copied = {path for source, paths in base.copies if source is None for path in paths}
    assert needed <= copied, f"COPY missing for {sorted(needed - copied)}"


def test_parser_reads_continuations_and_copy_flags() -> None:
    stages = parse_dockerfile(
        "FROM debian:bookworm AS a\n# note\nCOPY --chown=1:1 x \\\n  y /dst/\n"
        "FROM a AS b\nCOPY --from=a /opt /opt\n")
    assert [(s.name, s.base) for s in stages] == [("a", "debian:bookworm"), ("b", "a")]
    assert stages[0].copies == [(None, ["x", "y"])]
    assert stages[1].copies == [("a", ["/opt"])]


def test_compose_services_builds_and_mounts_exist() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"reautod", "postgres", "redis", "prometheus", "grafana"} <= set(services)
    build = services["reautod"]["build"]
    context = (DOCKER_DIR / build["context"]).resolve()
    assert context == REPO_ROOT
    assert (context / build["dockerfile"]) == DOCKERFILE
    stages = {s.name for s in parse_dockerfile(DOCKERFILE.read_text())}
    assert build["target"] in stages
    for name, service in services.items():
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            host = volume.split(":", 1)[0]
            if host.startswith("."):
                assert (DOCKER_DIR / host).exists(), f"{name} mounts missing {host}"
            else:
                assert host in compose.get("volumes", {}), f"{name}: undeclared volume {host}"


def test_the_daemon_accepts_the_environment_compose_gives_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = yaml.safe_load(COMPOSE.read_text())["services"]["reautod"]["environment"]
    for key, value in env.items():
        if not key.startswith("REAUTOD_SECRET_"):
            monkeypatch.setenv(key, str(value))
    settings = load_settings(None)
    assert settings.environment == "dev"
    assert settings.database_backend == "postgres" and settings.session_backend == "redis"
    # the development key seals recordings (the daemon loads it at start), and prod refuses it
    key = str(env["REAUTOD_SECRET_ENCRYPTION_KEY"])
    assert load_key_ring(key) is not None
    assert key.lower() in KNOWN_DEFAULT_SECRETS
