"""reautod: an on-prem voice appliance for outbound lead qualification."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("reautod")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+local"
