"""Secrets of the integrations, read from systemd credentials (files), never from the config.

A credential is named in the config (`secret_credential = "crm_webhook_secret"`) and read from
`$CREDENTIALS_DIRECTORY/<name>` (`LoadCredential=` in the unit); an absolute path names a file
directly (development, tests). Values are read once, stripped of surrounding whitespace.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from reautod.errors import ConfigError


class Credentials:
    """Reads named credentials; a missing or unreadable one is a ConfigError naming it."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        directory = env.get("CREDENTIALS_DIRECTORY")
        self.directory = Path(directory) if directory else None
        self._cache: dict[str, SecretStr] = {}

    def path(self, name: str) -> Path:
        if name.startswith("/"):
            return Path(name)
        if not name or "/" in name or name in (".", ".."):
            raise ConfigError(f"credential name {name!r} is not valid",
                              [("credential", "a file name, or an absolute path")])
        if self.directory is None:
            raise ConfigError(
                f"credential {name!r} needed but $CREDENTIALS_DIRECTORY is not set",
                [(name, "add LoadCredential= to the unit, or give an absolute path")],
            )
        return self.directory / name

    def get(self, name: str) -> SecretStr:
        if name not in self._cache:
            path = self.path(name)
            try:
                value = path.read_text(encoding="utf-8").strip()
            except OSError as err:
                raise ConfigError(f"cannot read credential {name!r}",
                                  [(name, f"{path}: {err.strerror or err}")]) from err
            if not value:
                raise ConfigError(f"credential {name!r} is empty", [(name, f"{path} is empty")])
            self._cache[name] = SecretStr(value)
        return self._cache[name]

    def value(self, name: str) -> str:
        return self.get(name).get_secret_value()
