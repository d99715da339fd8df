"""Incoming endpoints for CRMs and sheets tooling (a FastAPI router the daemon mounts):

- `POST /integrations/v1/campaigns/{campaign}/leads`: leads as CSV (`text/csv`) or JSON
  (`{"leads": [{"phone": ..., "name": ..., ...}]}`), validated and reported exactly like
  `reautoctl campaign import` (the report's `line` is the CSV line, or for JSON the item's index
  + 2, as if the items were CSV rows under a header).
- `POST /integrations/v1/dnc`: `{"number": ..., "campaign": null, "reason": ...}`.

Each request is authenticated by an HMAC signature of its raw body (the `Reautod-Signature`
scheme of our webhooks, same replay window) or by an `X-API-Key`; anything else is 401 and
changes nothing. Bodies are limited to the CSV import's size limit.
"""

from __future__ import annotations

import csv
import hmac
import io
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from reautod.campaigns.dialer import ErasedNumbers
from reautod.campaigns.dnc import DncChannel, DncList, DncScope, normalize_phone
from reautod.campaigns.intake import ImportResult, add_leads
from reautod.campaigns.leads_import import MAX_FILE_BYTES, MAX_ROWS
from reautod.campaigns.settings import settings_of
from reautod.errors import NotFoundError, ReautodError, UnavailableError, ValidationError
from reautod.integrations import signing
from reautod.integrations.credentials import Credentials
from reautod.integrations.settings import IncomingSettings
from reautod.store.database import Database
from reautod.store.repositories import CampaignRepository

PREFIX = "/integrations/v1"
API_KEY_HEADER = "X-API-Key"


class LeadsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    leads: list[dict[str, str | int | float | None]] = Field(max_length=MAX_ROWS)


class DncBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(min_length=2, max_length=32)
    campaign: str | None = Field(None, min_length=1, max_length=200)
    reason: str = Field("requested through the API", max_length=500)


class DncResult(BaseModel):
    number: str
    scope: str
    campaign: str | None


def leads_as_csv(items: list[dict[str, Any]]) -> bytes:
    """JSON leads as CSV with the union of their keys as the header (first-seen order)."""
    columns: dict[str, None] = {}
    for item in items:
        columns.update(dict.fromkeys(item))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(columns))
    for item in items:
        # one line per item, so that line n is item n - 2
        writer.writerow([" ".join(str(item.get(c) if item.get(c) is not None else "").splitlines())
                         for c in columns])
    return buffer.getvalue().encode()


def refused(err: ReautodError) -> JSONResponse:
    """A refusal with its stable code: unknown campaign 404, bad input 400, store down 503."""
    status = (404 if isinstance(err, NotFoundError) else 400 if isinstance(err, ValidationError)
              else 503 if isinstance(err, UnavailableError) else 500)
    return JSONResponse({"error": {"code": err.code, "message": err.message}}, status)


def incoming_router(db: Database, settings: IncomingSettings, credentials: Credentials,
                    dnc: DncList, *, clock: Callable[[], datetime],
                    erased: ErasedNumbers | None = None) -> APIRouter:
    secret = credentials.value(settings.secret_credential) if settings.secret_credential else None
    api_key = credentials.value(settings.api_key_credential) if settings.api_key_credential else None
    router = APIRouter(prefix=PREFIX)

    async def authenticated_body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_FILE_BYTES):
            raise HTTPException(413, f"bodies are limited to {MAX_FILE_BYTES} bytes")
        body = await request.body()
        if len(body) > MAX_FILE_BYTES:
            raise HTTPException(413, f"bodies are limited to {MAX_FILE_BYTES} bytes")
        signature = request.headers.get(signing.SIGNATURE_HEADER)
        if secret is not None and signature is not None:
            verdict = signing.verify(secret, body, signature)
            if verdict is signing.Verdict.VALID:
                return body
            raise HTTPException(401, f"signature {verdict.value}")
        key = request.headers.get(API_KEY_HEADER)
        if api_key is not None and key is not None and hmac.compare_digest(key.encode(),
                                                                           api_key.encode()):
            return body
        raise HTTPException(401, f"sign the body ({signing.SIGNATURE_HEADER}) or send {API_KEY_HEADER}")

    def parsed(body: bytes, model: type[BaseModel]) -> Any:
        try:
            return model.model_validate_json(body)
        except PydanticValidationError as err:
            raise HTTPException(422, json.loads(err.json(include_url=False))) from err

    @router.post("/campaigns/{campaign}/leads", response_model=ImportResult)
    async def add_campaign_leads(campaign: str, request: Request) -> Any:
        body = await authenticated_body(request)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "text/csv":
            data = body
        elif content_type == "application/json":
            data = leads_as_csv(parsed(body, LeadsBody).leads)
        else:
            raise HTTPException(415, "send text/csv or application/json")
        try:
            return await add_leads(db, campaign, data, source="api", clock=clock, erased=erased)
        except ReautodError as err:
            return refused(err)

    @router.post("/dnc", response_model=DncResult)
    async def add_dnc(request: Request) -> Any:
        params: DncBody = parsed(await authenticated_body(request), DncBody)
        try:
            found = await CampaignRepository(db).find(params.campaign) if params.campaign else None
            region = settings_of(found).default_region if found else "US"
            entry = await dnc.add(
                normalize_phone(params.number, region), source=DncChannel.OPERATOR, now=clock(),
                reason=params.reason, campaign_id=str(found.id) if found else None,
                scope=DncScope.CAMPAIGN if found else DncScope.GLOBAL)
        except ReautodError as err:
            return refused(err)
        return DncResult(number=entry.phone, scope=entry.scope.value,
                         campaign=found.name if found else None)

    return router
