"""`reautoctl seed demo`: an example campaign with sample leads for a new install.

The seed goes through the daemon's own `campaign.create` and `campaign.import`, so it is
validated like an operator's campaign and CSV. It is idempotent by those paths: the campaign is
created only when no campaign has its name, and the import skips phones already leads of the
campaign; a campaign of that name with other settings is someone's own and is left alone.

The leads use the 555-0100..0199 numbers reserved for fiction in every US area code, so nothing
real is ever dialed even if the campaign is started. Their `street` and `city` columns are what
the worked example playbook (`reautod/dialogue/examples/real-estate-sellers.yaml`) reads.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from reautod.campaigns.intake import ImportResult
from reautod.campaigns.leads_import import RowProblem
from reautod.campaigns.results import CampaignList, CampaignSummary
from reautod.campaigns.settings import CampaignSettings
from reautod.errors import ReautodError

DEMO_CAMPAIGN = "demo-real-estate"
# The worked example playbook the demo campaign runs (its `playbook:` name; the daemon seeds the
# examples into a new playbooks directory).
DEMO_PLAYBOOK = "real-estate-sellers"
# The business the example playbook's agent speaks for (its `agent.business`).
DEMO_BUSINESS = "Lakeside Realty"
DEMO_SETTINGS = CampaignSettings(business_name=DEMO_BUSINESS, max_concurrent=1,
                                 playbook=DEMO_PLAYBOOK)
# What the import reports for a phone that is already a lead of the campaign (a second run).
_ALREADY_A_LEAD = "phone already a lead in this campaign"


@dataclass(frozen=True)
class DemoLead:
    name: str
    phone: str  # E.164, 555-01XX: reserved for fiction
    timezone: str
    state: str
    email: str
    street: str
    city: str


DEMO_LEADS: tuple[DemoLead, ...] = (
    DemoLead("Maria Lopez", "+12125550142", "America/New_York", "NY", "maria.lopez@example.com",
             "41 Maple Street", "New York"),
    DemoLead("James Carter", "+13125550117", "America/Chicago", "IL", "jcarter@example.com",
             "1208 Lakeview Avenue", "Chicago"),
    DemoLead("Priya Shah", "+15125550163", "America/Chicago", "TX", "priya.shah@example.org",
             "77 Live Oak Drive", "Austin"),
    DemoLead("Tom Becker", "+13035550129", "America/Denver", "CO", "tbecker@example.net",
             "530 Aspen Court", "Denver"),
    DemoLead("Linda Nguyen", "+16025550178", "America/Phoenix", "AZ", "linda.nguyen@example.com",
             "9 Saguaro Way", "Phoenix"),
    DemoLead("Samuel Okafor", "+12065550135", "America/Los_Angeles", "WA",
             "sam.okafor@example.org", "2210 Cedar Lane", "Seattle"),
    DemoLead("Emily Walsh", "+16175550190", "America/New_York", "MA", "ewalsh@example.com",
             "15 Beacon Hill Road", "Boston"),
    DemoLead("Robert Kim", "+14045550151", "America/New_York", "GA", "rkim@example.net",
             "604 Peachtree Place", "Atlanta"),
)


def demo_leads_csv() -> str:
    """The sample leads as the CSV `campaign.import` takes (custom columns street, city)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["name", "phone", "timezone", "state", "email", "street", "city"])
    for lead in DEMO_LEADS:
        writer.writerow([lead.name, lead.phone, lead.timezone, lead.state, lead.email,
                         lead.street, lead.city])
    return out.getvalue()


def create_params() -> dict[str, Any]:
    """The `campaign.create` params of the demo campaign."""
    return {"name": DEMO_CAMPAIGN, **DEMO_SETTINGS.model_dump(mode="json")}


def import_params() -> dict[str, Any]:
    return {"campaign": DEMO_CAMPAIGN, "csv_text": demo_leads_csv()}


class SeedError(ReautodError):
    code = "seed_refused"


@dataclass(frozen=True)
class SeedResult:
    """What `seed demo` did; `changed` is false on a run that found everything in place."""

    campaign: str
    status: str
    campaign_created: bool
    leads_added: int
    leads_already_there: int

    @property
    def changed(self) -> bool:
        return self.campaign_created or self.leads_added > 0

    def wire(self) -> dict[str, Any]:
        return {"campaign": self.campaign, "status": self.status,
                "campaign_created": self.campaign_created, "leads_added": self.leads_added,
                "leads_already_there": self.leads_already_there, "changed": self.changed}


def existing_demo_campaign(listing: CampaignList) -> CampaignSummary | None:
    """The demo campaign in a `campaigns.list` reply; SeedError when the name is someone else's."""
    found = next((c for c in listing.campaigns if c.name == DEMO_CAMPAIGN), None)
    if found is not None and found.settings != DEMO_SETTINGS:
        raise SeedError(
            f"a campaign named {DEMO_CAMPAIGN!r} exists with other settings (not the demo's); "
            "left untouched", code="exists")
    return found


def seed_result(*, created: bool, status: str, import_reply: ImportResult) -> SeedResult:
    """Check the import report of the demo leads: every lead added or already there, no other
    problem (the sample data is ours, so any refusal is a defect, reported with its lines)."""
    reply = import_reply
    already = [i for i in reply.issues
               if i.problem == RowProblem.DUPLICATE.value and i.reason == _ALREADY_A_LEAD]
    others = [i for i in reply.issues if i not in already]
    if others:
        listed = "; ".join(f"line {i.line}: {i.problem} ({i.reason})" for i in others)
        raise SeedError(f"the demo leads were not all accepted: {listed}", code="seed_invalid")
    added = reply.summary.get("new_leads", 0)
    if added + len(already) != len(DEMO_LEADS):
        raise SeedError(f"{added} demo leads added and {len(already)} already there, of "
                        f"{len(DEMO_LEADS)}", code="seed_invalid")
    return SeedResult(DEMO_CAMPAIGN, status, created, added, len(already))
