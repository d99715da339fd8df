"""Adding leads to a campaign: the one path for `reautoctl campaign import`, the incoming
endpoint and a Google Sheet (reautod.integrations), so every source gets the same validation
(`leads_import.import_csv` over CSV bytes), the same store write and the same typed report."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel

from reautod.campaigns.dialer import ErasedNumbers
from reautod.campaigns.leads_import import ImportReport, import_csv
from reautod.campaigns.settings import settings_of
from reautod.store.database import Database
from reautod.store.repositories import CampaignRepository, ContactInput, LeadRepository

MAX_REPORTED_ISSUES = 1000


class ImportIssue(BaseModel):
    line: int  # the CSV line, or the sheet row
    problem: str
    reason: str
    imported: bool


class ImportResult(BaseModel):
    """What an import did: counts by problem (as `campaign import` reports them) and the rows."""

    campaign: str
    summary: dict[str, int]
    issues: list[ImportIssue]
    issues_truncated: bool


async def add_leads(db: Database, campaign_ref: str, data: bytes, *, source: str,
                    clock: Callable[[], datetime],
                    erased: ErasedNumbers | None = None) -> ImportResult:
    """Validate CSV `data` for the campaign (name or id) and add the good rows as leads; people
    who asked for erasure (`erased`) are never imported again, only counted."""
    campaign = await CampaignRepository(db).find(campaign_ref)
    settings = settings_of(campaign)
    leads = LeadRepository(db)
    existing = await leads.phones(campaign.id)
    report: ImportReport = await asyncio.to_thread(
        import_csv, data, default_region=settings.default_region, existing_phones=existing)
    gone = (await erased.erased_among(r.phone for r in report.rows)
            if erased is not None and report.rows else set())
    rows = [row for row in report.rows if row.phone not in gone]
    people = [
        ContactInput(phone_e164=row.phone, name=row.name, email=row.email, timezone=row.timezone,
                     source=f"{source}:{campaign.name}"[:200],
                     custom={**row.attributes, **({"state": row.state} if row.state else {})})
        for row in rows
    ]
    added = await leads.import_contacts(campaign.id, people, next_attempt_at=clock())
    issues = [ImportIssue(line=i.line, problem=i.problem.value, reason=i.reason,
                          imported=i.imported) for i in report.issues[:MAX_REPORTED_ISSUES]]
    return ImportResult(campaign=campaign.name, summary=report.summary() | {
                            "imported": len(rows), "erased_dropped": len(report.rows) - len(rows),
                            "new_leads": added},
                        issues=issues, issues_truncated=len(report.issues) > MAX_REPORTED_ISSUES)
