"""The premium voice as the cost part wires it, against the ElevenLabs stand-in (a subprocess,
never the real API): a dialed call whose lead scores high enough speaks premium (mu-law from the
stand-in, characters billed on the premium line, the decision stored), a call with no score stays
local, and a killed stand-in hands the call to the local voice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from reautod.call_events import CallInfo, CallState, ObserverFanOut
from reautod.config import Settings
from reautod.cost.part import CostPart
from reautod.engines.base import AudioEncoding
from reautod.engines.registry import EngineSet
from reautod.errors import ConfigError
from reautod.observability.events import EventBus
from reautod.observability.metrics import Metrics
from reautod.store.database import Database
from reautod.store.enums import VoiceTier
from reautod.store.records import ScoreUpdate, TierDecided
from reautod.store.repositories import CallRepository
from tests.cost.fakes import Collect
from tests.cost.test_metering import LLM, STT, TTS
from tests.engines.elevenlabs_standin import API_KEY
from tests.engines.test_elevenlabs import StandIn, standin
from tests.store.factories import call_started, campaign_contact_lead

__all__ = ["standin"]  # the stand-in fixture, started per test

T0 = datetime.now(UTC)
TEXT = "Thanks for taking my call today."


def info(call_id: str) -> CallInfo:
    return CallInfo(call_id=call_id, stream_sid="MZ", call_sid="CA1", lead_name="Ann",
                    campaign="spring", direction="outbound", state=CallState.LISTENING,
                    started_at=T0)


async def decided(sink: Collect, call_id: str) -> TierDecided:
    for _ in range(200):
        for record in sink.records:
            if isinstance(record, TierDecided) and record.call_id == uuid.UUID(call_id):
                return record
        await asyncio.sleep(0.02)
    raise AssertionError("no tier decision")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_high_score_lead_hears_the_premium_voice(db: Database, standin: StandIn) -> None:
    campaign, contact, lead = await campaign_contact_lead(db)
    start = call_started(campaign, contact, lead, at=T0, call_sid="CA1")
    await CallRepository(db).write([start, ScoreUpdate(uuid.uuid4(), 90, T0, lead_id=lead.id)])
    low = call_started(campaign, contact, None, at=T0, call_sid="CA2")  # no lead, no score
    await CallRepository(db).write([low])
    sink = Collect()
    # 90 % x $500 x 2 % = $9 of value against 1,200 characters x $0.05/1K = $0.06 of premium
    settings = Settings(cost={"deal_value_usd": "500", "premium_uplift": 0.02},
                        elevenlabs={"enabled": True, "base_url": standin.url, "timeout_s": 2.0,
                                    "retries": 0})
    part = CostPart(settings, db, sink, Metrics(), EventBus(), elevenlabs_api_key=API_KEY)
    await part.start()
    try:
        engines = part.metered(EngineSet(STT(), LLM(), TTS()))
        observers = ObserverFanOut(*part.observers)
        call, other = str(start.call_id), str(low.call_id)
        observers.on_call_started(info(call))
        observers.on_call_started(info(other))
        decision = await decided(sink, call)
        assert (decision.tier, decision.reason, decision.lead_score) == (
            VoiceTier.PREMIUM, "worth_it", 90)
        assert (await decided(sink, other)).reason == "no_score"

        premium = [c async for c in engines.tts.synthesize(TEXT, call_id=call)]
        assert premium and all(c.encoding is AudioEncoding.MULAW for c in premium)
        local = [c async for c in engines.tts.synthesize(TEXT, call_id=other)]
        assert local and all(c.encoding is AudioEncoding.PCM16 for c in local)
        assert [r["voice_id"] for r in standin.log()["requests"]] == [
            settings.elevenlabs.voice_id]  # only the premium call reached ElevenLabs

        snap = part.tracker.meter(start.call_id).snapshot()
        assert snap.tts_characters == {"premium": len(TEXT)} and snap.premium_micros > 0
        assert part.tracker.meter(low.call_id).snapshot().tts_characters == {"local": len(TEXT)}

        standin.kill()  # mid-call: the next utterance falls back to the local voice
        fallback = [c async for c in engines.tts.synthesize(TEXT, call_id=call)]
        assert fallback and all(c.encoding is AudioEncoding.PCM16 for c in fallback)
        assert engines.tts.tier_of(call) is VoiceTier.LOCAL
        observers.on_call_ended(call, "caller hung up", 30.0)
        observers.on_call_ended(other, "caller hung up", 30.0)
    finally:
        await part.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_enabled_without_a_key_is_a_config_error(db: Database) -> None:
    settings = Settings(elevenlabs={"enabled": True})
    with pytest.raises(ConfigError) as err:
        CostPart(settings, db, Collect(), Metrics(), EventBus())
    assert err.value.problems[0][0] == "secrets.elevenlabs_api_key_file"
