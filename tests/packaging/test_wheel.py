"""The wheel, built for real (`uv build --wheel`) and installed into a throwaway venv: it carries
the top-level migrations/ inside the package, and `reautoctl db` and the start-up schema check
run from the installed copy with no source tree in sight.

The throwaway venv gets the wheel alone (`--no-deps`); its dependencies come from the project's
venv through a path file, which adds that site-packages to sys.path without running the path
files in it, so the editable install of this checkout stays out.
"""

from __future__ import annotations

import json
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from reautod.store.schema import head_revision
from tests.packaging.tools import find_uv

REPO_ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = REPO_ROOT / "migrations"

pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)


def _uv() -> str:
    uv = find_uv()
    if uv is None:
        pytest.skip("building the wheel needs uv (pip install --user uv)")
    return uv


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = _uv()
    out = tmp_path_factory.mktemp("dist")
    build = [uv, "build", "--wheel", "--no-progress", "--out-dir", str(out), str(REPO_ROOT)]
    result = _run(build, REPO_ROOT)
    if result.returncode != 0:  # no index reachable: hatchling from uv's cache
        result = _run([*build, "--offline"], REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    wheels = sorted(out.glob("reautod-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def installed_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = _uv()
    venv = tmp_path_factory.mktemp("throwaway") / "venv"
    result = _run([uv, "venv", "-q", "--python", sys.executable, str(venv)], venv.parent)
    assert result.returncode == 0, result.stderr
    (site_dir,) = venv.glob("lib/python3*/site-packages")
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (site_dir / "project_dependencies.pth").write_text("\n".join(deps) + "\n")
    result = _run([uv, "pip", "install", "-q", "--no-deps", "--python", str(venv / "bin" / "python"),
                   str(wheel)], venv.parent)
    assert result.returncode == 0, result.stderr
    return venv


def test_the_wheel_carries_every_migration_inside_the_package(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"reautod/migrations/{p.relative_to(MIGRATIONS).as_posix()}"
                for p in MIGRATIONS.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert "reautod/migrations/env.py" in expected
    assert any(n.startswith("reautod/migrations/versions/") for n in expected)
    assert expected <= names, sorted(expected - names)
    assert not any(n.startswith("migrations/") for n in names)  # no top-level package squatted


def test_reautoctl_db_migrates_from_the_installed_wheel(installed_venv: Path,
                                                         tmp_path: Path) -> None:
    config = tmp_path / "reautod.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\nruntime_dir = "{tmp_path / "run"}"\n')
    ctl = [str(installed_venv / "bin" / "reautoctl"), "--config", str(config), "--json", "db"]
    upgraded = _run([*ctl, "upgrade"], tmp_path)
    assert upgraded.returncode == 0, upgraded.stdout + upgraded.stderr
    assert json.loads(upgraded.stdout)["to"] == head_revision()
    history = json.loads(_run([*ctl, "history"], tmp_path).stdout)
    assert {r["revision"] for r in history} == {p.stem for p in
                                                (MIGRATIONS / "versions").glob("*.py")}


def test_the_start_up_schema_check_uses_the_packaged_migrations(installed_venv: Path,
                                                                 tmp_path: Path) -> None:
    code = (
        "import asyncio, sys\n"
        "from reautod.config import DatabaseSettings\n"
        "from reautod.store import schema\n"
        "from reautod.store.database import Database\n"
        "async def main():\n"
        "    db = Database(sys.argv[1], DatabaseSettings())\n"
        "    await db.open()\n"
        "    try:\n"
        "        status = await db.ensure_schema(auto_migrate=False)\n"
        "    finally:\n"
        "        await db.close()\n"
        "    print(schema.migrations_dir(), status.current, status.head)\n"
        "asyncio.run(main())\n"
    )
    url = f"sqlite+aiosqlite:///{tmp_path / 'reautod.db'}"
    result = _run([str(installed_venv / "bin" / "python"), "-c", code, url], tmp_path)
    assert result.returncode == 0, result.stderr
    where, current, head = result.stdout.split()
    assert Path(where).is_relative_to(installed_venv) and Path(where).name == "migrations"
    assert current == head == head_revision()
