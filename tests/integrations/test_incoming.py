"""The incoming endpoints: leads (CSV or JSON) with the CSV import's validation and report, DNC
entries; signed or API-key requests only, everything else refused without a change."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from reautod.campaigns.dnc import DncList
from reautod.campaigns.store_adapters import StoreDncStorage
from reautod.integrations import signing
from reautod.integrations.credentials import Credentials
from reautod.integrations.incoming import incoming_router
from reautod.integrations.settings import IncomingSettings
from reautod.store.database import Database
from reautod.store.repositories import CampaignRepository, LeadRepository

SECRET, KEY = "incoming-secret", "incoming-key"
CSV = (b"name,phone,state,timezone\nPat Doe,(303) 555-0142,CO,America/Denver\n"
       b"Bad Phone,12,CO,\n")


@pytest.fixture
async def api(db: Database, credentials: Callable[..., Credentials]) -> AsyncIterator[httpx.AsyncClient]:
    await CampaignRepository(db).create("spring")
    settings = IncomingSettings(enabled=True, secret_credential="in_secret",
                                api_key_credential="in_key")
    app = FastAPI()
    app.include_router(incoming_router(db, settings, credentials(in_secret=SECRET, in_key=KEY),
                                       DncList(StoreDncStorage(db)), clock=lambda: datetime.now(UTC)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://reautod") as client:
        yield client


def signed(body: bytes, **headers: str) -> dict[str, str]:
    return {signing.SIGNATURE_HEADER: signing.sign(SECRET, body), **headers}


async def phones(db: Database) -> set[str]:
    return await LeadRepository(db).phones((await CampaignRepository(db).find("spring")).id)


async def test_leads_by_signed_csv_and_by_api_key_json(api: httpx.AsyncClient, db: Database) -> None:
    response = await api.post("/integrations/v1/campaigns/spring/leads", content=CSV,
                              headers=signed(CSV, **{"Content-Type": "text/csv"}))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["summary"]["imported"] == 1 and report["summary"]["new_leads"] == 1
    assert [(i["line"], i["problem"]) for i in report["issues"]] == [(3, "bad_phone")]

    body = json.dumps({"leads": [{"name": "Sam Roe", "phone": "+12125550199", "state": "NY",
                                  "crm_id": 42},
                                 {"name": "", "phone": "+12125550100", "state": "NY"}]}).encode()
    response = await api.post("/integrations/v1/campaigns/spring/leads", content=body,
                              headers={"Content-Type": "application/json", "X-API-Key": KEY})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["summary"]["new_leads"] == 1
    assert [(i["line"], i["problem"]) for i in report["issues"]] == [(3, "missing_name")]
    assert await phones(db) == {"+13035550142", "+12125550199"}


async def test_refusals_change_nothing(api: httpx.AsyncClient, db: Database) -> None:
    url = "/integrations/v1/campaigns/spring/leads"
    csv_type = {"Content-Type": "text/csv"}
    stale = {signing.SIGNATURE_HEADER: signing.sign(SECRET, CSV, timestamp=int(time.time()) - 600)}
    for headers in ({}, {"X-API-Key": "wrong"}, signed(b"other body"), stale,
                    {signing.SIGNATURE_HEADER: "t=1,v1=00"}):
        response = await api.post(url, content=CSV, headers={**headers, **csv_type})
        assert response.status_code == 401, headers
    assert (await api.post("/integrations/v1/campaigns/autumn/leads", content=CSV,
                           headers=signed(CSV, **csv_type))).status_code == 404
    not_csv = b"\x00\x01binary"
    bad = await api.post(url, content=not_csv, headers=signed(not_csv, **csv_type))
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "import_file_invalid"
    xml = b"<leads/>"
    assert (await api.post(url, content=xml, headers=signed(xml, **{"Content-Type": "text/xml"}))
            ).status_code == 415
    junk = b'{"leads": "many"}'
    assert (await api.post(url, content=junk, headers=signed(junk, **{"Content-Type": "application/json"}))
            ).status_code == 422
    assert await phones(db) == set()


async def test_dnc_entries(api: httpx.AsyncClient, db: Database) -> None:
    body = json.dumps({"number": "(303) 555-0142", "campaign": "spring", "reason": "CRM"}).encode()
    response = await api.post("/integrations/v1/dnc", content=body, headers={"X-API-Key": KEY})
    assert response.json() == {"number": "+13035550142", "scope": "campaign", "campaign": "spring"}
    global_body = json.dumps({"number": "+12125550199"}).encode()
    response = await api.post("/integrations/v1/dnc", content=global_body, headers=signed(global_body))
    assert response.json()["scope"] == "global"
    dnc = DncList(StoreDncStorage(db))
    campaign = await CampaignRepository(db).find("spring")
    assert (await dnc.check("+13035550142", str(campaign.id))).suppressed
    assert (await dnc.check("+12125550199", None)).suppressed
    for bad in (b'{"number": "12"}', b'{"number": "+12125550199", "campaign": "nope"}'):
        response = await api.post("/integrations/v1/dnc", content=bad, headers=signed(bad))
        assert response.status_code in (400, 404)
    assert (await api.post("/integrations/v1/dnc", content=body)).status_code == 401
