"""A real Radicale CalDAV server for the tests: a subprocess on a free port, its collections and
users file in a temp dir, with one user and one calendar made through CalDAV itself."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.fixtures.services import free_port

USER, PASSWORD, CALENDAR = "rep", "rep-password", "work"


@dataclass(frozen=True)
class Radicale:
    url: str
    user: str = USER
    password: str = PASSWORD
    calendar: str = CALENDAR

    @property
    def calendar_url(self) -> str:
        return f"{self.url}{self.user}/{self.calendar}/"


@contextlib.contextmanager
def radicale(base: Path) -> Iterator[Radicale]:
    base.mkdir(parents=True, exist_ok=True)
    (base / "users").write_text(f"{USER}:{PASSWORD}\n")
    port = free_port()
    log = (base / "radicale.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "radicale", "--storage-filesystem-folder", str(base / "collections"),
         "--server-hosts", f"127.0.0.1:{port}", "--auth-type", "htpasswd",
         "--auth-htpasswd-filename", str(base / "users"), "--auth-htpasswd-encryption", "plain",
         "--rights-type", "owner_only"],
        stdout=log, stderr=subprocess.STDOUT)
    server = Radicale(f"http://127.0.0.1:{port}/")
    try:
        deadline = time.monotonic() + 30
        auth = (USER, PASSWORD)
        while True:
            try:
                if httpx.request("PROPFIND", server.url, auth=auth, timeout=2).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"radicale did not start: {(base / 'radicale.log').read_text()}")
            time.sleep(0.1)
        body = ('<?xml version="1.0"?><C:mkcalendar xmlns:D="DAV:" '
                'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
                f"<D:displayname>{CALENDAR}</D:displayname></D:prop></D:set></C:mkcalendar>")
        httpx.request("PROPFIND", f"{server.url}{USER}/", auth=auth, timeout=5)  # makes the home
        made = httpx.request("MKCALENDAR", server.calendar_url, auth=auth, content=body, timeout=5)
        if made.status_code != 201:
            raise RuntimeError(f"MKCALENDAR: HTTP {made.status_code} {made.text}")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def put_event(server: Radicale, name: str, ics: str) -> None:
    """Put an event on the rep's calendar as the rep's own client would."""
    response = httpx.put(server.calendar_url + name, content=ics.encode(),
                         auth=(server.user, server.password),
                         headers={"Content-Type": "text/calendar"}, timeout=5)
    response.raise_for_status()


def get_events(server: Radicale) -> dict[str, str]:
    """Every event resource on the calendar: name -> ICS text."""
    listing = httpx.request("PROPFIND", server.calendar_url, auth=(server.user, server.password),
                            headers={"Depth": "1"}, timeout=5)
    names = sorted({part.split("</", 1)[0].rsplit("/", 1)[-1]
                    for part in listing.text.split("href>")[1:] if ".ics" in part.split("</")[0]})
    return {n: httpx.get(server.calendar_url + n, auth=(server.user, server.password),
                         timeout=5).text for n in names}


def clear_events(server: Radicale) -> None:
    for name in get_events(server):
        httpx.delete(server.calendar_url + name, auth=(server.user, server.password), timeout=5)
