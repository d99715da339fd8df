"""TLS on the daemon's own HTTP port: the certificate and key files checked once, up front.

uvicorn loads `http.tls_cert_file` / `http.tls_key_file` itself when it starts serving; this
module loads them first (at start-up and by `reautod --check-config`) so that a missing file, an
unreadable credential, a key that does not match the certificate or a key with a passphrase is a
`ConfigError` naming the setting, not a traceback from inside uvicorn, and never a passphrase
prompt on a service's terminal.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from reautod.config import HttpSettings
from reautod.errors import ConfigError


@dataclass(frozen=True)
class TlsFiles:
    """A certificate chain and its private key that load together (PEM)."""

    cert_file: Path
    key_file: Path


def _no_passphrase() -> bytes:
    raise ConfigError(
        "the TLS key is encrypted",
        [("http.tls_key_file", "the key has a passphrase; give reautod an unencrypted key "
          "(protect it as a systemd credential instead)")],
    )


def server_tls(http: HttpSettings) -> TlsFiles | None:
    """The TLS files to serve with, checked; None for plain http. Raises ConfigError."""
    if http.tls_cert_file is None or http.tls_key_file is None:
        return None
    files = TlsFiles(http.tls_cert_file, http.tls_key_file)
    problems: list[tuple[str, str]] = []
    for field, path in (("http.tls_cert_file", files.cert_file),
                        ("http.tls_key_file", files.key_file)):
        try:
            with path.open("rb") as f:
                f.read(1)
        except FileNotFoundError:
            problems.append((field, f"{path} not found"))
        except OSError as err:
            problems.append((field, f"cannot read {path}: {err.strerror}"))
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) with the TLS files", problems)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(files.cert_file, files.key_file, password=_no_passphrase)
    except ssl.SSLError as err:
        raise ConfigError(
            "the TLS certificate and key do not load",
            [("http.tls_cert_file", f"{files.cert_file} with {files.key_file}: {err.reason or err} "
              "(PEM certificate chain first, then its matching private key)")],
        ) from None
    return files


def loopback_client_context(files: TlsFiles) -> ssl.SSLContext:
    """A client context for the daemon calling its own port (`reautoctl call simulate`).

    It trusts exactly the certificate this port serves (pinned, also when a public CA signed it)
    and skips the host-name check: the daemon connects to 127.0.0.1, a name no public certificate
    carries, and the pin already proves it reached itself.
    """
    context = ssl.create_default_context(cafile=str(files.cert_file))
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the leaf itself is the trust anchor
    context.check_hostname = False
    return context
