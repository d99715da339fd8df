"""Callers who ring the Twilio number: what the agent says first, and a lead for a stranger.

A lead calling back is answered by their campaign (reautod.outbound.tracker). Here:

- `inbound_opening`: the campaign's rendered `agent.inbound_greeting`, carried in the stream's
  `opening` parameter so the agent greets the caller the moment the stream starts (before, the
  caller heard silence until the re-prompt). An opening that cannot fit a stream parameter is
  left out (the caller is answered, and greeted by the re-prompt) rather than refusing the call.
- `inbound_lead`: a caller who is no lead becomes a new lead of `twilio.inbound_campaign`,
  through the one lead-import path (`intake.add_leads`: the same validation, and a number whose
  owner asked for erasure is never stored again). No inbound campaign, an unknown one, an
  erased or unusable number: None, and the caller hears `twilio.inbound_message` before the
  call ends (never a silent hang-up).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from reautod.campaigns.dialer import ErasedNumbers
from reautod.campaigns.intake import add_leads
from reautod.campaigns.settings import CampaignSettings
from reautod.errors import NotFoundError
from reautod.live_settings import LiveSettings
from reautod.observability.logging import mask_phone
from reautod.store.database import Database
from reautod.store.repositories import CampaignRepository, LeadRepository
from reautod.telephony.stream import MAX_OPENING_CHARS
from reautod.telephony.webhooks import LeadMatch

log = logging.getLogger(__name__)

# What a caller who is no lead is called in the store until someone knows better (the import
# path wants a name; the agent does not greet them by it: the call carries no lead name).
CALLER_NAME = "Caller"
SOURCE = "inbound"
# A lead made by calling in is not dialed back within this: the call they made settles what
# comes next (an outcome, a callback), and the dialer must not ring them while they talk.
FIRST_DIAL_AFTER = timedelta(days=1)


class InboundDesk:
    """`outbound.tracker.InboundCalls` over the live settings and the store."""

    def __init__(self, live: LiveSettings, db: Database, *, clock: Callable[[], datetime],
                 erased: ErasedNumbers | None = None) -> None:
        self._live = live
        self._db = db
        self._clock = clock
        self._erased = erased

    def inbound_opening(self, settings: CampaignSettings) -> str | None:
        current = self._live.current
        text = settings.render_inbound_opening(current.agent, current.twilio.from_number)
        if len(text) > MAX_OPENING_CHARS:
            log.warning("the inbound greeting is %d characters once rendered (at most %d fit a "
                        "stream parameter); callers are answered without it", len(text),
                        MAX_OPENING_CHARS)
            return None
        return text

    async def inbound_lead(self, phone: str) -> LeadMatch | None:
        name = self._live.current.twilio.inbound_campaign
        if not name:
            return None
        try:
            campaign = await CampaignRepository(self._db).find(name)
        except NotFoundError:
            log.error("twilio.inbound_campaign %r is no campaign; callers who are no lead hear "
                      "the inbound message", name)
            return None
        out = io.StringIO()
        csv.writer(out).writerows([["name", "phone"], [CALLER_NAME, phone]])
        result = await add_leads(self._db, str(campaign.id), out.getvalue().encode(),
                                 source=SOURCE, clock=lambda: self._clock() + FIRST_DIAL_AFTER,
                                 erased=self._erased)
        if not result.summary.get("imported"):
            log.info("caller %s not taken as a lead of %s (%s)", mask_phone(phone), campaign.name,
                     ", ".join(sorted(k for k, v in result.summary.items() if v)))
            return None
        lead = next((row for row in await LeadRepository(self._db).by_phone(phone)
                     if row.campaign_id == campaign.id), None)
        return LeadMatch(str(lead.id), "", campaign.name) if lead is not None else None
