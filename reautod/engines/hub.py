"""Downloads from the Hugging Face hub (profiles `gpu` and `cpu`), verified and resumable.

Each file is fetched with a streaming GET into `<file>.part`, resumed with a `Range` header after
an interruption (within one run: retries; across runs: the `.part` stays), checked, and only then
renamed into place, so a model file that exists is a complete, verified one.

What a file is checked against, in this order:
1. a sha256 pinned in the catalog (`RemoteFile.sha256`);
2. for files the hub stores in LFS (every model weight file), the sha256 the hub states in the
   `X-Linked-Etag` header of the resolve request (with `X-Linked-Size`). This is the hub's own
   content address of the LFS object: it catches truncation, corruption and a wrong mirror, but it
   is trust in the hub over TLS, not a pin made independently of it;
3. for small non-LFS files (configs, tokenizers), the `ETag`, which the hub sets to the git blob
   SHA-1 of the file: `sha1(b"blob <size>\\0" + content)`.
A file for which none of these is available is refused. The catalog pins no sha256 today (none
could be verified offline when it was written), so (2) and (3) apply.

Nothing here runs at call time: the daemon never downloads; only `reautoctl models pull` does.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from reautod.engines.catalog import RemoteFile
from reautod.engines.fetch import (
    ChecksumError,
    Progress,
    PulledFile,
    PullError,
    SilentProgress,
    hash_file,
    install,
    sha256_of,
    size_text,
)

log = logging.getLogger(__name__)

DEFAULT_HUB_URL = "https://huggingface.co"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Expected:
    """What a downloaded file must match, and who said so."""

    algorithm: Literal["sha256", "git-sha1"]
    digest: str
    size: int | None
    source: str  # "catalog pin", "hub X-Linked-Etag", "hub ETag (git blob)"


def resolve_url(hub_url: str, file: RemoteFile) -> str:
    return f"{hub_url.rstrip('/')}/{file.repo}/resolve/{file.revision}/{file.path}"


def _unquote(etag: str | None) -> str:
    if not etag:
        return ""
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"').lower()


def expected_from_headers(file: RemoteFile, headers: httpx.Headers) -> Expected:
    """What the downloaded bytes must match (see the module docstring for the order)."""
    size_header = headers.get("x-linked-size") or headers.get("content-length")
    size = int(size_header) if size_header and size_header.isdigit() else None
    if file.sha256:
        return Expected("sha256", file.sha256.lower(), size, "catalog pin")
    linked = _unquote(headers.get("x-linked-etag"))
    if _SHA256.match(linked):
        return Expected("sha256", linked, size, "hub X-Linked-Etag")
    etag = _unquote(headers.get("etag"))
    if _SHA1.match(etag):
        return Expected("git-sha1", etag, size, "hub ETag (git blob)")
    if _SHA256.match(etag):
        return Expected("sha256", etag, size, "hub ETag")
    raise PullError(f"{file.repo}/{file.path}: the hub gave no checksum to verify against "
                    f"(no X-Linked-Etag or ETag); refusing an unverified download")


def _git_blob_sha1(path: Path) -> str:
    hasher = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    hash_file(path, hasher)
    return hasher.hexdigest()


class Downloader:
    """Downloads catalog files into a models directory with one HTTP client."""

    def __init__(self, models_dir: Path, *, hub_url: str = DEFAULT_HUB_URL,
                 progress: Progress | None = None, retries: int = 3,
                 client: httpx.Client | None = None) -> None:
        if not re.match(r"^https?://[^/\s]+", hub_url):
            raise PullError(f"hub URL must be http(s)://host[/path], got {hub_url!r}")
        self.models_dir = models_dir
        self.hub_url = hub_url
        self.progress: Progress = progress or SilentProgress()
        self.retries = retries
        headers = {"user-agent": "reautod-models-pull"}
        self._own_client = client is None
        self.client = client or httpx.Client(
            headers=headers, timeout=httpx.Timeout(30.0, read=60.0), follow_redirects=False)

    def close(self) -> None:
        if self._own_client:
            self.client.close()

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def pull(self, file: RemoteFile, *, force: bool = False) -> PulledFile:
        dest = self.models_dir / file.dest
        if dest.is_file() and not force:
            return PulledFile(file.dest, "present", dest.stat().st_size, "verified when downloaded")
        url = resolve_url(self.hub_url, file)
        url, expected = self._head(file, url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        resumed_from = part.stat().st_size if part.is_file() else 0
        self._check_space(file, dest.parent, expected, resumed_from)
        attempt = 0
        while True:
            try:
                self._download(file, url, part, expected)
                break
            except OSError as err:  # disk full, permissions: the .part stays for a resume
                raise PullError(f"{file.dest}: cannot write {part}: {err.strerror or err}") from err
            except (httpx.TransportError, _Incomplete) as err:
                attempt += 1
                if attempt > self.retries:
                    raise PullError(f"{file.dest}: download failed after {attempt} attempts "
                                    f"({err}); run the command again to resume") from err
                log.warning("%s: %s; resuming (attempt %d)", file.dest, err, attempt + 1)
                time.sleep(min(5.0, 0.5 * attempt))
        digest = self._verify(file, part, expected)
        install(part, dest)
        verified = f"{'sha256' if expected.algorithm == 'sha256' else 'git blob sha1'} from " \
                   f"{expected.source}"
        size = size_text(dest.stat().st_size)
        self.progress.finish(f"{file.dest}: ok ({size}, {verified})")
        return PulledFile(file.dest, "downloaded", dest.stat().st_size, verified, digest,
                          resumed_from)

    @staticmethod
    def _check_space(file: RemoteFile, folder: Path, expected: Expected, have: int) -> None:
        if expected.size is None:
            return
        needed = expected.size - have
        free = shutil.disk_usage(folder).free
        if needed > free:
            raise PullError(f"{file.dest}: needs {size_text(needed)} more, only "
                            f"{size_text(free)} free in {folder}")

    def _head(self, file: RemoteFile, url: str) -> tuple[str, Expected]:
        try:
            response = self.client.head(url, follow_redirects=False)
            # A renamed repository answers with a relative redirect to the new name; the
            # redirect to the CDN (absolute) is where the checksum headers already are.
            for _ in range(3):
                location = response.headers.get("location", "")
                if not (response.is_redirect and location.startswith("/")
                        and "x-linked-etag" not in response.headers):
                    break
                url = str(response.url.join(location))
                response = self.client.head(url, follow_redirects=False)
        except httpx.TransportError as err:
            raise PullError(f"cannot reach {self.hub_url} for {file.repo}/{file.path}: {err} "
                            f"(offline? `reautoctl models pull --test` builds test models "
                            f"without a network)") from err
        if response.status_code in (401, 403):
            raise PullError(f"{file.repo}: access denied ({response.status_code}); the "
                            f"repository may be gated: accept its licence on the hub first")
        if response.status_code == 404:
            raise PullError(f"{file.repo}/{file.path} not found at {url}")
        if response.status_code >= 400:
            raise PullError(f"{url}: HTTP {response.status_code}")
        return url, expected_from_headers(file, response.headers)

    def _download(self, file: RemoteFile, url: str, part: Path, expected: Expected) -> None:
        offset = part.stat().st_size if part.is_file() else 0
        if expected.size is not None and offset > expected.size:
            part.unlink()
            offset = 0
        headers = {"range": f"bytes={offset}-"} if offset else {}
        with self.client.stream("GET", url, headers=headers, follow_redirects=True) as response:
            if response.status_code == 416:  # nothing left to fetch: the part is complete
                return
            if response.status_code >= 400:
                raise PullError(f"{url}: HTTP {response.status_code}")
            if response.status_code == 206:
                start = _content_range_start(response.headers.get("content-range"))
                if start != offset:
                    raise PullError(f"{url}: server resumed at byte {start}, asked {offset}")
                mode = "ab"
            else:  # 200: the server ignored Range; start over
                offset = 0
                mode = "wb"
            total = expected.size
            if total is None and response.headers.get("content-length", "").isdigit():
                total = offset + int(response.headers["content-length"])
            self.progress.start(file.dest, total, offset)
            done = offset
            with part.open(mode) as out:
                for block in response.iter_bytes():  # as received, so a cut loses nothing
                    out.write(block)
                    done += len(block)
                    self.progress.advance(done)
        if total is not None and done < total:
            raise _Incomplete(f"connection ended at {done} of {total} bytes")

    def _verify(self, file: RemoteFile, part: Path, expected: Expected) -> str:
        size = part.stat().st_size
        digest = sha256_of(part) if expected.algorithm == "sha256" else _git_blob_sha1(part)
        if digest != expected.digest or (expected.size is not None and size != expected.size):
            part.unlink(missing_ok=True)
            raise ChecksumError(
                f"{file.dest}: checksum mismatch (got {expected.algorithm} {digest}, "
                f"{size} bytes; expected {expected.digest}"
                f"{'' if expected.size is None else f', {expected.size} bytes'} from "
                f"{expected.source}); the partial file was deleted, nothing was installed")
        return digest


class _Incomplete(Exception):
    """The body ended before the announced size: retry with Range."""


def _content_range_start(value: str | None) -> int | None:
    match = re.match(r"bytes (\d+)-", value or "")
    return int(match.group(1)) if match else None
