"""Subject requests on SQLite and Postgres: the export holds everything about the person and
nothing about anyone else; erasure removes it everywhere (rows, files, Redis, earlier exports)
and keeps only the salted hash that stops the number being dialed again."""

from __future__ import annotations

import io
import json
import wave
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reautod.errors import ConfigError, PermissionDeniedError, ValidationError
from reautod.security.keys import KeyRing, generate_key_text
from reautod.security.principal import Principal, Role, acting_as, control_peer
from reautod.security.privacy import PrivacyService, SessionSnapshots
from reautod.security.subjects import ErasureRegister, SubjectHasher, load_salt
from reautod.sessions import RedisSessionStore, SessionStore
from reautod.store.database import Database
from reautod.store.enums import PrivacyRegime
from tests.security.people import ALICE, BOB, Person, database_text, person

ADMIN = control_peer(1000, 42, "/run/reautod/control.sock")
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


@pytest.fixture
def keys() -> KeyRing:
    return KeyRing.parse(generate_key_text())


@pytest.fixture
async def sessions(redis_url: str, redis_prefix: str) -> SessionStore:
    store = RedisSessionStore(redis_url, prefix=redis_prefix)
    yield store  # type: ignore[misc]
    await store.close()


def service(db: Database, tmp_path: Path, keys: KeyRing | None,
            sessions: SessionStore | None = None) -> PrivacyService:
    register = ErasureRegister(db, SubjectHasher(load_salt(tmp_path / "state")))
    return PrivacyService(db, register, recordings_dir=tmp_path / "recordings",
                          exports_dir=tmp_path / "exports", keys=keys,
                          holders=[SessionSnapshots(sessions)] if sessions else [],
                          clock=lambda: NOW)


async def two_people(db: Database, tmp_path: Path, keys: KeyRing) -> tuple[Person, Person]:
    alice = await person(db, tmp_path / "recordings", keys, ALICE, "Alice Example", 1)
    bob = await person(db, tmp_path / "recordings", keys, BOB, "Bob Other", 2)
    return alice, bob


def mode(path: str) -> int:
    return Path(path).stat().st_mode & 0o777


def exists(path: str) -> bool:
    return Path(path).exists()


def read_archive(path: str) -> tuple[dict, dict[str, bytes]]:  # type: ignore[type-arg]
    with zipfile.ZipFile(path) as archive:
        body = json.loads(archive.read("subject.json"))
        files = {n: archive.read(n) for n in archive.namelist() if n.endswith(".wav")}
    return body, files


async def test_export_holds_everything_about_the_person_and_nobody_else(
    db: Database, tmp_path: Path, keys: KeyRing, sessions: SessionStore
) -> None:
    alice, _ = await two_people(db, tmp_path, keys)
    await sessions.put("live-1", {"call_id": "live-1", "to": ALICE, "state": "speaking"})
    await sessions.put("live-2", {"call_id": "live-2", "to": BOB})
    privacy = service(db, tmp_path, keys, sessions)
    with acting_as(ADMIN):
        result = await privacy.export(ALICE, PrivacyRegime.CCPA, NOW - timedelta(days=2))
    body, wavs = read_archive(result.path)
    assert body["phone"] == ALICE and body["format"] == "reautod-subject-export/1"
    tables = body["tables"]
    assert [c["name"] for c in tables["contacts"]] == ["Alice Example"]
    assert {c["id"] for c in tables["calls"]} == {str(i) for i in alice.call_ids}
    assert len(tables["turns"]) == 3 and len(tables["leads"]) == 1
    for name in ("lead_scores", "appointments", "dnc_entries", "dial_blocks", "call_attempts",
                 "webhook_dead_letters", "cost_events"):
        assert len(tables[name]) == 1, name
    assert len(tables["webhook_outbox"]) == 2  # one by contact, one naming the number only
    assert len(tables["recordings"]) == 2 and result.recordings == 2
    assert body["other_holders"]["live_sessions"] == [
        {"session": "live-1", "snapshot": {"call_id": "live-1", "to": ALICE,
                                           "state": "speaking"}}]
    assert BOB not in json.dumps(body) and "Bob Other" not in json.dumps(body)
    # recordings decrypted, checked against the stored checksum
    inbound = next(v for k, v in wavs.items() if k.endswith("inbound.wav"))
    with wave.open(io.BytesIO(inbound), "rb") as w:
        assert w.readframes(w.getnframes()) == alice.audio
    assert all(r["matches_stored_sha256"] for r in body["recordings"])
    # the request is logged with its legal dates and closed
    assert result.deadline.due_at == NOW - timedelta(days=2) + timedelta(days=45)
    assert result.deadline.acknowledge_by is not None
    with acting_as(ADMIN):
        [logged] = await privacy.requests()
    assert logged.status == "completed" and logged.kind == "export" and not logged.overdue
    assert logged.actor == "uid:1000"
    assert mode(result.path) == 0o640


async def test_erase_removes_the_person_everywhere_and_keeps_only_the_hash(
    db: Database, tmp_path: Path, keys: KeyRing, sessions: SessionStore
) -> None:
    alice, _ = await two_people(db, tmp_path, keys)
    await sessions.put("live-1", {"to": ALICE})
    await sessions.put(str(alice.call_ids[1]), {"state": "ended"})
    await sessions.put("live-2", {"to": BOB})
    privacy = service(db, tmp_path, keys, sessions)
    before_bob = await privacy.repo.collect(BOB, privacy.register.hasher.hash(BOB))
    with acting_as(ADMIN):
        export = await privacy.export(ALICE)
        receipt = await privacy.erase(ALICE, PrivacyRegime.GDPR)

    assert await privacy.register.is_erased(ALICE) and not await privacy.register.is_erased(BOB)
    assert await privacy.register.erased_among([ALICE, BOB, "+15550009999"]) == {ALICE}
    everything = await database_text(db)
    for trace in (ALICE, ALICE.lstrip("+"), "Alice Example", "1@example.com",
                  str(alice.contact_id), *(str(c) for c in alice.call_ids)):
        assert trace not in everything, trace  # costs stay, without their call
    assert receipt.subject_hash in everything
    assert receipt.rows_removed["contacts"] == 1 and receipt.rows_removed["calls"] == 2
    assert receipt.rows_removed["webhook_outbox"] == 2
    assert receipt.rows_removed["dnc_entries"] == 1 and receipt.rows_removed["turns"] == 3
    assert receipt.recording_files_removed == 2 and receipt.export_archives_removed == 1
    assert receipt.other_holders == {"live_sessions": 2}
    assert receipt.processors_to_notify == {"twilio": [f"CA{1:032d}"]}
    assert not exists(export.path)
    assert not list((tmp_path / "recordings").rglob(f"*{alice.call_ids[0]}*"))
    assert set(await sessions.all()) == {"live-2"}
    # Bob is untouched, his recordings included
    after_bob = await privacy.repo.collect(BOB, privacy.register.hasher.hash(BOB))
    assert {k: len(v) for k, v in after_bob.tables.items()} == {
        k: len(v) for k, v in before_bob.tables.items()}
    assert all(exists(r.path) for r in after_bob.recordings)
    # the receipt is stored without the number; a second erasure finishes nothing twice
    with acting_as(ADMIN):
        again = await privacy.erase(ALICE)
        logged = await privacy.requests()
    assert sum(again.rows_removed.values()) == 0
    assert sorted(r.kind for r in logged) == ["erase", "erase", "export"]
    assert ALICE not in json.dumps([r.model_dump(mode="json") for r in logged])


async def test_requests_need_the_privacy_permission(db: Database, tmp_path: Path) -> None:
    privacy = service(db, tmp_path, None)
    with pytest.raises(PermissionDeniedError, match="no caller identity"):
        await privacy.erase(ALICE)
    for role in (Role.OPERATOR, Role.ANALYST, Role.AUDITOR, Role.INTEGRATION):
        with acting_as(Principal("token:x", role, "api")), pytest.raises(PermissionDeniedError):
            await privacy.export(ALICE)
    with acting_as(ADMIN), pytest.raises(ValidationError, match="future"):
        await privacy.export(ALICE, received_at=NOW + timedelta(days=1))


async def test_an_unreadable_recording_is_listed_not_fatal(
    db: Database, tmp_path: Path, keys: KeyRing
) -> None:
    await two_people(db, tmp_path, keys)
    privacy = service(db, tmp_path, KeyRing.parse(generate_key_text()))  # the wrong key
    with acting_as(ADMIN):
        result = await privacy.export(ALICE)
    body, wavs = read_archive(result.path)
    assert wavs == {} and result.recordings == 0 and result.recordings_unreadable == 2
    assert all("key_unavailable" in r["problem"] for r in body["recordings"])


async def test_a_changed_salt_is_refused(db: Database, tmp_path: Path, keys: KeyRing) -> None:
    privacy = service(db, tmp_path, keys)
    with acting_as(ADMIN):
        await privacy.erase(ALICE)
    await privacy.register.check_salt()  # the salt it was written with: fine
    (tmp_path / "state" / "privacy" / "erasure.salt").unlink()  # lost with the state dir
    other = ErasureRegister(db, SubjectHasher(load_salt(tmp_path / "state")))
    with pytest.raises(ConfigError, match="would be dialed again"):
        await other.check_salt()
    credential = SubjectHasher(load_salt(tmp_path, "c2FsdHNhbHRzYWx0c2FsdHNhbHQ="))
    assert credential.salt_id != other.hasher.salt_id
    with pytest.raises(ConfigError):
        load_salt(tmp_path, "not base64!")
    with pytest.raises(ConfigError):
        SubjectHasher(b"short")
