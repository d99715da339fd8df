"""An offer's campaign, in process: the campaigns a caller may choose, an unknown one refused
before any media, a known one (named by its id) given to the call as its stored name, which is
what makes its playbook's agent answer (StoreAgentSource finds the campaign by that name). The
CallManager is a fake that records the calls it was given; aiortc answers a real offer."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from aiortc import RTCPeerConnection

from reautod.campaigns.settings import CampaignSettings
from reautod.conversation import CallContext
from reautod.errors import NotFoundError, ValidationError
from reautod.observability.events import EventBus
from reautod.store.repositories.campaigns import CampaignRow
from reautod.telephony.stream import CloseCode
from reautod.webrtc.calls import WebRTCCalls
from reautod.webrtc.media import WebRTCMedia
from reautod.webrtc.signalling import CampaignChoice, Offer

SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


def campaign(name: str, playbook: str | None) -> CampaignRow:
    columns = CampaignSettings(playbook=playbook).to_columns()
    now = datetime.now(UTC)
    return CampaignRow(id=uuid.uuid4(), name=name, status="draft",
                       agent_config=columns["agent_config"],
                       calling_window=columns["calling_window"], pacing=columns["pacing"],
                       max_attempts=3, retry_delay_s=3600, budget_micros=None, created_at=now,
                       updated_at=now)


@dataclass
class FakeCampaigns:
    """The campaigns store (a `Campaigns`): find by name or id, as the repository does."""

    rows: list[CampaignRow]

    async def find(self, name_or_id: str) -> CampaignRow:
        for row in self.rows:
            if name_or_id in (row.name, str(row.id)):
                return row
        raise NotFoundError(f"no campaign named {name_or_id!r}")

    async def list(self) -> list[CampaignRow]:
        return list(self.rows)


@dataclass
class FakeManager:
    """The CallManager's side WebRTCCalls uses: admission, then each call run (ended at once)."""

    contexts: list[CallContext] = field(default_factory=list)

    def check_admission(self) -> None:
        pass

    async def run(self, media: WebRTCMedia, call: CallContext) -> str:
        self.contexts.append(call)
        await media.close(CloseCode.NORMAL, "ended")
        return "ended"


SELLERS = campaign("sellers", "real-estate-sellers")
PLAIN = campaign("plain", None)


def calls_with(manager: FakeManager) -> WebRTCCalls:
    return WebRTCCalls(manager, EventBus(), FakeCampaigns([SELLERS, PLAIN]))  # type: ignore[arg-type]


async def test_the_campaigns_a_caller_may_choose() -> None:
    broken = campaign("broken", None)
    broken.agent_config["playbook"] = 7  # stored settings that no longer validate
    calls = WebRTCCalls(FakeManager(), EventBus(),  # type: ignore[arg-type]
                        FakeCampaigns([SELLERS, PLAIN, broken]))
    assert await calls.campaigns() == [CampaignChoice(name="sellers", playbook="real-estate-sellers"),
                                       CampaignChoice(name="plain", playbook=None),
                                       CampaignChoice(name="broken", playbook=None)]


async def test_an_unknown_campaign_is_refused_before_any_media() -> None:
    manager = FakeManager()
    calls = calls_with(manager)
    with pytest.raises(NotFoundError) as refused:
        # an SDP aiortc could not answer: the campaign is checked first
        await calls.answer(Offer(sdp=SDP, campaign="nope"), "sounddevice")
    assert refused.value.code == "unknown_campaign" and "'nope'" in refused.value.message
    assert manager.contexts == [] and calls.live_count == 0
    with pytest.raises(ValidationError):  # a known one goes on to the offer
        await calls.answer(Offer(sdp=SDP, campaign="sellers"), "sounddevice")


def test_a_campaign_name_is_validated() -> None:
    """As campaign names are stored (campaign.create's DisplayName): the same name matches."""
    assert Offer(sdp=SDP, campaign="  spring   sellers ").campaign == "spring sellers"
    for bad in ("", "   ", "a\nb", "x" * 201):
        with pytest.raises(ValueError, match="name"):
            Offer(sdp=SDP, campaign=bad)


async def test_the_call_belongs_to_the_campaign_the_offer_names() -> None:
    manager = FakeManager()
    calls = calls_with(manager)
    caller = RTCPeerConnection()
    try:
        caller.addTransceiver("audio", direction="sendrecv")
        caller.createDataChannel("events")
        await caller.setLocalDescription(await caller.createOffer())
        by_id = await calls.answer(Offer(sdp=caller.localDescription.sdp,
                                         campaign=str(SELLERS.id)), "sounddevice")
        plain = await calls.answer(Offer(sdp=caller.localDescription.sdp), "sounddevice")
        for _ in range(200):  # each call runs (and ends at once) on its own task
            if calls.live_count == 0:
                break
            await asyncio.sleep(0.01)
        await calls.close()
    finally:
        await caller.close()
    assert [(c.call_id, c.campaign) for c in manager.contexts] == [
        (by_id.call_id, "sellers"), (plain.call_id, None)]
