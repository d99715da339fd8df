"""sd_notify(3) for the daemon: READY/RELOADING/STOPPING/STATUS and the watchdog.

Uses libsystemd through systemd-python; outside systemd (no $NOTIFY_SOCKET) every call is a no-op.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

import systemd.daemon as sd_daemon


class Notifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.enabled = bool(env.get("NOTIFY_SOCKET"))
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watched = usec.isdigit() and (not pid or pid == str(os.getpid()))
        self.watchdog_usec = int(usec) if watched else None

    def send(self, *lines: str) -> None:
        if self.enabled:
            sd_daemon.notify("\n".join(lines))

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def ready(self, status: str | None = None) -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> None:
        # MONOTONIC_USEC lets Type=notify-reload units match the reload to this message
        self.send(
            "RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
        )

    def stopping(self, status: str | None = None) -> None:
        self.send("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def watchdog_interval(self, override_s: float | None = None) -> float | None:
        """Ping period: half of WatchdogSec (systemd's advice), or the configured override."""
        if override_s is not None:
            return override_s
        if self.watchdog_usec is None:
            return None
        return self.watchdog_usec / 2_000_000
