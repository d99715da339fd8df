"""Exports: every dataset in JSON, CSV and XML from the real store; CSV cells that would run as
formulas are neutralised; XML is well-formed and valid against the shipped XSD; memory stays flat
however many rows stream through; `reautoctl export` writes the same bytes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree
from sqlalchemy import insert

from reautod.control.cli import main
from reautod.errors import NotFoundError
from reautod.integrations.exports import XSD_PATH, Dataset, Format, csv_safe, stream_export, xsd
from reautod.store import models as m
from reautod.store.database import Database
from reautod.store.enums import CallOutcome, CallStatus
from reautod.store.records import CallEnded, TurnSpoken
from reautod.store.repositories import AppointmentRepository, CallRepository
from reautod.store.repositories._base import table
from tests.store.factories import T0, call_started, campaign_contact_lead, turn

NASTY = "=HYPERLINK(\"http://evil\")\x01 <b>&amp; ünï</b>"


async def export(db: Database, dataset: Dataset, fmt: Format, **kw: object) -> bytes:
    return b"".join([chunk async for chunk in stream_export(db, dataset, fmt, **kw)])  # type: ignore[arg-type]


def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD_PATH)))


async def seed(db: Database) -> uuid.UUID:
    campaign, contact, lead = await campaign_contact_lead(db)
    started = call_started(campaign, contact, lead, call_sid="CA1")
    nasty = TurnSpoken(turn_id=uuid.uuid4(), call_id=started.call_id, seq=3, speaker=turn(started.call_id, 1).speaker,
                       text=NASTY, started_at=T0 + timedelta(seconds=9))
    await CallRepository(db).write([
        started, turn(started.call_id, 1), turn(started.call_id, 2), nasty,
        CallEnded(call_id=started.call_id, ended_at=T0 + timedelta(minutes=2),
                  status=CallStatus.COMPLETED, outcome=CallOutcome.BOOKED, disposition="-2+3",
                  answered_at=T0, duration_ms=120_000)])
    await AppointmentRepository(db).book(contact.id, T0 + timedelta(days=1), T0 + timedelta(days=1, minutes=30),
                                         campaign_id=campaign.id, call_id=started.call_id,
                                         timezone="America/New_York", notes="@rep call first")
    return started.call_id


def test_the_shipped_xsd_is_current_and_formula_cells_are_neutralised() -> None:
    assert XSD_PATH.read_text() == xsd(), "regenerate export.xsd from exports.xsd()"
    assert [csv_safe(v) for v in ("=1+2", "+1555", "-2", "@SUM", "\tx", "\rx", "ok", "")] == [
        "'=1+2", "'+1555", "'-2", "'@SUM", "'\tx", "'\rx", "ok", ""]


async def test_every_dataset_in_every_format(db: Database) -> None:
    call_id = await seed(db)
    xsd_schema = schema()
    for dataset in Dataset:
        as_json = json.loads(await export(db, dataset, Format.JSON))
        as_csv = list(csv.DictReader(io.StringIO((await export(db, dataset, Format.CSV)).decode())))
        xml = await export(db, dataset, Format.XML)
        root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False))
        xsd_schema.assertValid(root)
        assert root.get("dataset") == dataset.value
        assert len(as_json) == len(as_csv) == len(root) >= 1, dataset
    calls_json = json.loads(await export(db, Dataset.CALLS, Format.JSON))
    assert calls_json[0]["call_id"] == str(call_id) and calls_json[0]["outcome"] == "booked"
    assert calls_json[0]["created_at"].endswith("Z")
    [call_csv] = csv.DictReader(io.StringIO((await export(db, Dataset.CALLS, Format.CSV)).decode()))
    assert call_csv["disposition"] == "'-2+3" and call_csv["duration_ms"] == "120000"
    assert call_csv["from_number"] == ""  # missing is empty
    turns_csv = list(csv.DictReader(io.StringIO((await export(db, Dataset.TRANSCRIPTS, Format.CSV)).decode())))
    assert [t["seq"] for t in turns_csv] == ["1", "2", "3"]
    assert turns_csv[2]["text"] == "'" + NASTY
    turns_xml = etree.fromstring(await export(db, Dataset.TRANSCRIPTS, Format.XML))
    ns = {"x": "urn:reautod:export:1"}
    assert turns_xml.findall("x:turn/x:text", ns)[2].text == NASTY.replace("\x01", "\ufffd")
    [leads_csv] = csv.DictReader(io.StringIO((await export(db, Dataset.LEADS, Format.CSV)).decode()))
    assert leads_csv["phone"] == "'+15550001111" and leads_csv["dnc"] == "false"
    [appt] = json.loads(await export(db, Dataset.APPOINTMENTS, Format.JSON))
    assert appt["notes"] == "@rep call first" and appt["phone"] == "+15550001111"


async def test_filters_by_campaign_and_since(db: Database) -> None:
    await seed(db)
    assert json.loads(await export(db, Dataset.CALLS, Format.JSON, campaign="spring"))
    assert json.loads(await export(db, Dataset.CALLS, Format.JSON,
                                   since=datetime.now(UTC) + timedelta(days=1))) == []
    empty_xml = await export(db, Dataset.LEADS, Format.XML, since=datetime.now(UTC) + timedelta(days=1))
    schema().assertValid(etree.fromstring(empty_xml))
    with pytest.raises(NotFoundError):
        await export(db, Dataset.CALLS, Format.CSV, campaign="nope")


async def test_memory_stays_flat_on_a_large_table(db: Database) -> None:
    campaign, _, _ = await campaign_contact_lead(db)
    rows = 16_000
    now = datetime.now(UTC)
    people = [{"id": uuid.uuid4(), "phone_e164": f"+1666{i:07d}", "name": f"Lead {i} " + "x" * 40,
               "consent_status": "unknown", "dnc": False, "custom": {}, "created_at": now,
               "updated_at": now} for i in range(rows)]
    async with db.engine.begin() as conn:
        await conn.execute(insert(table(m.Contact)), people)
        await conn.execute(insert(table(m.Lead)), [
            {"id": uuid.uuid4(), "campaign_id": campaign.id, "contact_id": p["id"], "status": "new",
             "priority": 0, "attempts": 0, "created_at": now + timedelta(microseconds=i),
             "updated_at": now} for i, p in enumerate(people)])
    del people
    tracemalloc.start()
    try:
        count = size = 0
        async for chunk in stream_export(db, Dataset.LEADS, Format.CSV, page_size=200):
            count += chunk.count(b"\r\n")
            size += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == rows + 2  # header, the factory's lead, and every bulk row
    # The whole export is ~3 MB of CSV (far more as Python rows); a page is 200 rows: the
    # peak stays under half the output, so neither the rows nor the output were ever held.
    assert size > 3_000_000 and peak < size // 2, (size, peak)


async def test_reautoctl_export_writes_a_file(db: Database, tmp_path: Path) -> None:
    await seed(db)
    config = tmp_path / "reautod.toml"
    config.write_text(f'database_url = "{db.url.render_as_string(hide_password=False)}"\n')
    out = tmp_path / "calls.xml"
    code = await asyncio.to_thread(main, ["--config", str(config), "export", "calls", "--format",
                                          "xml", "--campaign", "spring", "--output", str(out)])
    assert code == 0
    assert out.read_bytes().split(b"generated_at")[1].split(b">", 1)[1] == (
        await export(db, Dataset.CALLS, Format.XML)).split(b"generated_at")[1].split(b">", 1)[1]
    schema().assertValid(etree.parse(str(out)))
    assert await asyncio.to_thread(main, ["--config", str(config), "export", "calls", "--since",
                                          "yesterday"]) == 1
