"""The test-service fixtures: running servers, throwaway servers, and failing loudly without either."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy.engine import make_url

from tests.fixtures import services
from tests.fixtures.services import (
    DATABASE_PREFIX,
    REDIS_URL_ENV,
    ServiceError,
    ThrowawayPostgres,
    ThrowawayRedis,
    delete_prefixed_keys,
    drop_database,
    free_port,
    libpq_url,
    postgres_reachable,
    postgres_service,
    redis_reachable,
    redis_service,
    temporary_database,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
HAVE_PG_BINARIES = services.find_postgres_bin("initdb") is not None and (
    services.find_postgres_bin("pg_ctl") is not None
)
HAVE_REDIS_BINARY = shutil.which("redis-server") is not None


def _database_exists(admin_url: str, name: str) -> bool:
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def _closed_port_url(scheme: str, path: str) -> str:
    return f"{scheme}://postgres@127.0.0.1:{free_port()}/{path}"


# --- fixtures against the suite's servers -------------------------------------------------------


def test_database_url_is_its_own_async_database(database_url: str, postgres_admin_url: str) -> None:
    parsed = make_url(database_url)
    assert parsed.drivername == "postgresql+psycopg"
    assert parsed.database is not None and parsed.database.startswith(DATABASE_PREFIX)
    assert _database_exists(postgres_admin_url, parsed.database)
    assert postgres_reachable(database_url)


def test_fresh_database_is_empty_and_distinct(database_url: str, fresh_database_url: str) -> None:
    assert make_url(fresh_database_url).database != make_url(database_url).database
    with psycopg.connect(libpq_url(fresh_database_url)) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)


def test_temporary_database_is_dropped_even_with_open_connections(postgres_admin_url: str) -> None:
    with temporary_database(postgres_admin_url) as url:
        name = make_url(url).database
        assert name is not None
        leftover = psycopg.connect(libpq_url(url))
        leftover.execute("CREATE TABLE t (x int)")
        leftover.commit()
    # The drop terminated the connection a careless test left open.
    assert not _database_exists(postgres_admin_url, name)
    with pytest.raises(psycopg.OperationalError):
        leftover.execute("SELECT 1")
    leftover.close()
    # Dropping again is harmless (teardown after a test that dropped it itself).
    drop_database(postgres_admin_url, name)


def test_redis_prefix_keys_are_deleted_and_others_kept(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    prefix = "reautod-test:selfcheck-a:"
    other = "reautod-test:selfcheck-b:keep"
    try:
        for i in range(1200):  # more than one SCAN page and one DEL batch
            client.set(f"{prefix}{i}", i)
        client.set(other, 1)
        assert delete_prefixed_keys(redis_url, prefix) == 1200
        assert list(client.scan_iter(match=f"{prefix}*")) == []
        assert client.get(other) == b"1"
    finally:
        client.delete(other)
        delete_prefixed_keys(redis_url, prefix)
        client.close()


def test_redis_prefix_fixture_is_unique(redis_prefix: str, redis_url: str) -> None:
    assert redis_prefix.startswith("reautod-test:") and redis_prefix.endswith(":")
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match=f"{redis_prefix}*")) == []
        client.set(f"{redis_prefix}k", "v")  # the fixture's teardown removes it
    finally:
        client.close()


# --- choosing a server --------------------------------------------------------------------------


def test_explicit_unreachable_postgres_is_an_error_not_a_fallback() -> None:
    env = {services.DATABASE_URL_ENV: _closed_port_url("postgresql", "postgres")}
    with pytest.raises(ServiceError, match="does not accept connections"), postgres_service(env):
        pass


def test_explicit_unreachable_redis_is_an_error_not_a_fallback() -> None:
    env = {REDIS_URL_ENV: f"redis://127.0.0.1:{free_port()}/0"}
    with pytest.raises(ServiceError, match="does not answer PING"), redis_service(env):
        pass


def test_reachable_default_is_used_as_is(postgres_admin_url: str, redis_url: str) -> None:
    with postgres_service({}, default_url=postgres_admin_url) as url:
        assert url == postgres_admin_url
    with redis_service({}, default_url=redis_url) as url:
        assert url == redis_url


def test_no_server_and_no_binaries_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(services, "POSTGRES_BIN_GLOB", str(tmp_path / "none"))
    with (
        pytest.raises(ServiceError, match="apt-get install postgresql redis-server"),
        postgres_service({}, default_url=_closed_port_url("postgresql", "postgres")),
    ):
        pass
    with (
        pytest.raises(ServiceError, match="redis-server not found"),
        redis_service({}, default_url=f"redis://127.0.0.1:{free_port()}/0"),
    ):
        pass


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_PG_BINARIES, reason="initdb/pg_ctl not installed")
def test_unreachable_default_starts_and_stops_a_throwaway_postgres() -> None:
    with postgres_service({}, default_url=_closed_port_url("postgresql", "postgres")) as url:
        assert postgres_reachable(url)
        with temporary_database(url) as db_url, psycopg.connect(libpq_url(db_url)) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (
                make_url(db_url).database,
            )
    assert not postgres_reachable(url)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_PG_BINARIES, reason="initdb/pg_ctl not installed")
def test_throwaway_postgres_lives_in_its_temp_dir() -> None:
    server = ThrowawayPostgres.start()
    try:
        assert (server.data_dir / "PG_VERSION").exists()
        assert (server.socket_dir / f".s.PGSQL.{server.port}").exists()
        if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to an unprivileged user
            assert server.run_as is not None
            assert server.data_dir.stat().st_uid == server.run_as.pw_uid != 0
    finally:
        server.stop()
    assert not server.base_dir.exists()
    assert not postgres_reachable(server.admin_url)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_REDIS_BINARY, reason="redis-server not installed")
def test_unreachable_default_starts_and_stops_a_throwaway_redis() -> None:
    with redis_service({}, default_url=f"redis://127.0.0.1:{free_port()}/0") as url:
        client = redis.Redis.from_url(url)
        try:
            client.set("k", "v")
            assert client.get("k") == b"v"
            # Nothing is persisted: a throwaway must not leave files behind or fork for RDB saves.
            assert client.config_get("save") == {"save": ""}
            assert client.config_get("appendonly") == {"appendonly": "no"}
        finally:
            client.close()
    assert not redis_reachable(url)


@pytest.mark.skipif(not HAVE_REDIS_BINARY, reason="redis-server not installed")
def test_throwaway_redis_reports_a_port_it_cannot_bind(redis_url: str) -> None:
    busy = make_url(redis_url).port or 6379
    with pytest.raises(ServiceError, match="did not start"):
        ThrowawayRedis.start(port=busy, ready_timeout_s=5)


# --- the fixture fails the run instead of skipping ----------------------------------------------


@pytest.mark.slow  # a whole pytest run in a subprocess
def test_fixture_errors_instead_of_skipping_when_unavailable(tmp_path: Path) -> None:
    test_file = tmp_path / "test_needs_db.py"
    test_file.write_text(
        textwrap.dedent(
            """
            def test_needs_db(database_url):
                pass

            def test_needs_redis(redis_prefix):
                pass
            """
        )
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        services.DATABASE_URL_ENV: _closed_port_url("postgresql", "postgres"),
        REDIS_URL_ENV: f"redis://127.0.0.1:{free_port()}/0",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.fixtures.services", "-q", "-rA",
         "-p", "no:cacheprovider", str(test_file)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "2 errors" in out and "skipped" not in out, out
    assert "test Postgres unavailable" in out and "does not accept connections" in out, out
    assert "test Redis unavailable" in out and "does not answer PING" in out, out
