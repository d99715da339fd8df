"""environment = dev | staging | prod: prod refuses unsafe settings, staging warns, dev allows."""

from __future__ import annotations

from pathlib import Path

import pytest

from reautod import daemon
from reautod.config import Secrets, Settings, load_settings
from reautod.environment import MIN_KEY_LENGTH, check_environment, unsafe_settings
from reautod.errors import ConfigError
from reautod.security.keys import generate_key_text

STRONG = "k" * MIN_KEY_LENGTH
SAFE: dict[str, object] = {
    "database_url": "postgresql+psycopg://reautod:Xq81mw0pLa@db.internal:5432/reautod",
    "redis_url": "redis://:Hj2lq0wnPe@127.0.0.1:6379/0",
    "http": {"public_base_url": "https://voice.example.com"},
}
SAFE_SECRETS = {"twilio_auth_token": "a1b2c3d4e5", "jwt_secret": STRONG,
                "encryption_key": generate_key_text()}


def settings(environment: str, **changes: object) -> Settings:
    return load_settings(None, overrides={"environment": environment, **SAFE, **changes})


def secrets(**changes: str | None) -> Secrets:
    from pydantic import SecretStr

    values = {**SAFE_SECRETS, **changes}
    return Secrets({k: SecretStr(v) if v else None for k, v in values.items()})


def fields(found: list[object]) -> list[str]:
    return [f.field for f in found]  # type: ignore[attr-defined]


def test_a_safe_production_config_has_no_findings() -> None:
    assert unsafe_settings(settings("prod"), secrets()) == []
    assert check_environment(settings("prod"), secrets()) == []


def test_the_embedded_default_is_unsafe_on_every_count() -> None:
    found = unsafe_settings(Settings(), Secrets({}))
    assert fields(found) == [
        "database_url", "redis_url", "http.public_base_url",
        "secrets.twilio_auth_token", "secrets.jwt_secret", "secrets.encryption_key",
    ]
    assert "SQLite" in found[0].problem
    assert "missing" in found[3].problem


@pytest.mark.parametrize(
    ("changes", "secret_changes", "field", "words"),
    [
        ({"http": {"public_base_url": "http://voice.example.com"}}, {}, "http.public_base_url", "TLS"),
        ({"http": {"public_base_url": "https://"}}, {}, "http.public_base_url", "host"),
        ({"http": {"public_base_url": "https://voice.example.com", "host": "0.0.0.0"}}, {},
         "http.host", "plain http"),
        ({"database_url": "postgresql+psycopg://reautod:changeme@db/reautod"}, {}, "database_url",
         "default"),
        ({"redis_url": "redis://:redis@127.0.0.1:6379/0"}, {}, "redis_url", "default"),
        ({}, {"jwt_secret": "short-but-random-9f2"}, "secrets.jwt_secret", "at least 32"),
        ({}, {"encryption_key": "dev-only-encryption-key-not-for-production-use"},
         "secrets.encryption_key", "well-known"),
        # 64 hex digits are no base64 32-byte key: the daemon could not seal recordings with it
        ({}, {"encryption_key": "9f" * 32}, "secrets.encryption_key", "reautoctl keys generate"),
        ({}, {"twilio_auth_token": " ChangeMe \n"}, "secrets.twilio_auth_token", "well-known"),
        ({}, {"elevenlabs_api_key": "example"}, "secrets.elevenlabs_api_key", "well-known"),
    ],
)
def test_each_unsafe_setting_is_named(
    changes: dict[str, object], secret_changes: dict[str, str], field: str, words: str
) -> None:
    found = unsafe_settings(settings("prod", **changes), secrets(**secret_changes))
    assert fields(found) == [field]
    assert words in found[0].problem


def test_an_open_bind_is_safe_when_the_port_itself_speaks_tls() -> None:
    http = {"public_base_url": "https://voice.example.com", "host": "0.0.0.0",
            "tls_cert_file": "/run/credentials/reautod.service/tls.crt",
            "tls_key_file": "/run/credentials/reautod.service/tls.key"}
    assert unsafe_settings(settings("prod", http=http), secrets()) == []
    assert unsafe_settings(settings("prod", http={**http, "host": "::1"}), secrets()) == []


def test_prod_refuses_with_every_finding_and_dev_allows_them() -> None:
    unsafe = {"database_url": None, "http": {"public_base_url": "http://x.example"}}
    with pytest.raises(ConfigError) as caught:
        check_environment(settings("prod", **unsafe), secrets(jwt_secret=None))
    assert "prod" in caught.value.message
    assert [p for p, _ in caught.value.problems] == [
        "database_url", "http.public_base_url", "secrets.jwt_secret",
    ]
    assert check_environment(settings("dev", **unsafe), secrets(jwt_secret=None)) == []
    warnings = check_environment(settings("staging", **unsafe), secrets(jwt_secret=None))
    assert len(warnings) == 3
    assert all("refused in prod" in w for w in warnings)


def test_the_environment_key_is_validated(tmp_path: Path) -> None:
    config = tmp_path / "reautod.toml"
    config.write_text('environment = "production"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert caught.value.problems[0][0] == "environment"


def test_check_config_shows_the_refusal_and_the_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`reautod --check-config`: prod exits 2 naming each setting; staging passes with warnings."""
    config = tmp_path / "reautod.toml"
    config.write_text('environment = "prod"\n[http]\npublic_base_url = "http://voice.example.com"\n')
    assert daemon.main(["--config", str(config), "--check-config"]) == 2
    err = capsys.readouterr().err
    assert 'environment = "prod" refuses' in err
    for field in ("database_url", "redis_url", "http.public_base_url", "secrets.jwt_secret"):
        assert f"  {field}: " in err
    config.write_text('environment = "staging"\n')
    assert daemon.main(["--config", str(config), "--check-config"]) == 0
    captured = capsys.readouterr()
    assert "configuration OK" in captured.out
    assert "reautod: warning: database_url:" in captured.err
