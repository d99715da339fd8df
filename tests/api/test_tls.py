"""`http.tls_cert_file` / `http.tls_key_file`: both or neither, and files that do not load are a
ConfigError naming the setting (never a passphrase prompt, never a traceback from uvicorn)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reautod.api.tls import TlsFiles, server_tls
from reautod.config import HttpSettings, load_settings
from reautod.errors import ConfigError
from tests.fixtures.tls import self_signed


def http(cert: Path | None, key: Path | None) -> HttpSettings:
    return HttpSettings(tls_cert_file=cert, tls_key_file=key)


def test_plain_http_without_files(tmp_path: Path) -> None:
    assert server_tls(HttpSettings()) is None
    assert HttpSettings().tls is False


def test_a_matching_pair_loads(tmp_path: Path) -> None:
    made = self_signed(tmp_path)
    settings = http(made.cert_file, made.key_file)
    assert settings.tls is True
    assert server_tls(settings) == TlsFiles(made.cert_file, made.key_file)


@pytest.mark.parametrize("which", ["tls_cert_file", "tls_key_file"])
def test_one_without_the_other_is_refused(tmp_path: Path, which: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, overrides={"http": {which: str(tmp_path / "x.pem")}})
    assert err.value.problems[0][0] == "http"
    assert "both tls_cert_file and tls_key_file" in err.value.problems[0][1]


def test_missing_and_unreadable_files_are_named(tmp_path: Path) -> None:
    made = self_signed(tmp_path)
    with pytest.raises(ConfigError) as err:
        server_tls(http(tmp_path / "nope.crt", made.key_file))
    assert err.value.problems == [("http.tls_cert_file", f"{tmp_path / 'nope.crt'} not found")]
    with pytest.raises(ConfigError) as err:
        server_tls(http(made.cert_file, tmp_path))  # a directory is not a key
    assert err.value.problems[0][0] == "http.tls_key_file"
    assert "cannot read" in err.value.problems[0][1]


def test_a_key_of_another_certificate_is_refused(tmp_path: Path) -> None:
    one, other = self_signed(tmp_path, name="one"), self_signed(tmp_path, name="other")
    with pytest.raises(ConfigError) as err:
        server_tls(http(one.cert_file, other.key_file))
    field, problem = err.value.problems[0]
    assert field == "http.tls_cert_file" and "matching private key" in problem


def test_a_key_with_a_passphrase_is_refused_without_prompting(tmp_path: Path) -> None:
    made = self_signed(tmp_path, key_password=b"hunter22")
    with pytest.raises(ConfigError) as err:
        server_tls(http(made.cert_file, made.key_file))
    assert err.value.problems[0][0] == "http.tls_key_file"
    assert "passphrase" in err.value.problems[0][1]


def test_swapped_files_are_refused(tmp_path: Path) -> None:
    made = self_signed(tmp_path)
    with pytest.raises(ConfigError):
        server_tls(http(made.key_file, made.cert_file))
