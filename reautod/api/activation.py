"""systemd socket activation: the HTTP listening socket handed over by `reautod.socket`.

With the socket unit, systemd owns the HTTP port: it stays bound and listening while the service
restarts (a crash, `Restart=on-failure`), so what Twilio sends meanwhile (the `<Connect action>`
request of a call whose stream died with the daemon, reautod.recovery) waits in the kernel's
backlog and the new process answers it, instead of the connection being refused. systemd passes
the sockets as fds 3.. with LISTEN_PID and LISTEN_FDS (sd_listen_fds(3)); read at the entry
point (reautod.daemon.main) and unset there, so no child inherits them.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import MutableMapping

log = logging.getLogger(__name__)

SD_LISTEN_FDS_START = 3
_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def take_listen_sockets(env: MutableMapping[str, str], pid: int,
                        start: int = SD_LISTEN_FDS_START) -> list[socket.socket]:
    """The sockets systemd passed to process `pid` (none when it passed none, or passed them to
    another process); the variables are removed from `env` either way."""
    passed = {name: env.pop(name, None) for name in _VARIABLES}
    if passed["LISTEN_PID"] != str(pid) or not (passed["LISTEN_FDS"] or "").isdigit():
        return []
    sockets = []
    for fd in range(start, start + int(passed["LISTEN_FDS"] or 0)):
        sock = socket.socket(fileno=fd)
        sock.set_inheritable(False)
        sockets.append(sock)
    return sockets


_ANY = ("", "0.0.0.0", "::")


def listens_at(sock: socket.socket, host: str, port: int) -> bool:
    """Whether `sock` listens where [http] says (port 0: any port will do); a wildcard host
    wants a wildcard socket (one on 127.0.0.1 would hide the box from the network)."""
    bound_host, bound_port = sock.getsockname()[:2]
    if port and bound_port != port:
        return False
    if host in _ANY:
        return bound_host in _ANY
    return bool(host == bound_host)
