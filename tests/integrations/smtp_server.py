"""A real SMTP server for the tests (aiosmtpd in its own thread) that keeps what it receives."""

from __future__ import annotations

import contextlib
import email
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default
from typing import Any

from aiosmtpd.controller import Controller

from tests.fixtures.services import free_port


class Inbox:
    """The server's handler: `failures` are SMTP replies given to the next DATA commands."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.failures: list[str] = []
        self.port = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            if self.failures:
                return self.failures.pop(0)
            message = email.message_from_bytes(envelope.content, policy=default)
            assert isinstance(message, EmailMessage)
            self.messages.append(message)
        return "250 OK"


@contextlib.contextmanager
def smtp_server() -> Iterator[Inbox]:
    inbox = Inbox()
    inbox.port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
