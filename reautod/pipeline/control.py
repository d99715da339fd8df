"""Control-socket methods of the call pipeline: calls.list, call.hangup, call.simulate.

`call.simulate` places a simulated call to this daemon through its own media WebSocket (the
Twilio simulator plays the phone), so it exercises exactly what a real call does.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from reautod.engines.base import TextToSpeech
from reautod.errors import ReautodError, ValidationError
from reautod.methods import Method, NoParams
from reautod.pipeline.calls import CallManager
from reautod.pipeline.results import (
    HangupResult,
    LiveCallList,
    SimulationResult,
    SimulatorSummary,
)
from reautod.telephony.simulator import (
    CallOptions,
    CallResult,
    Hangup,
    Step,
    Utterance,
    WaitForAgent,
    run_call,
)
from reautod.telephony.stream import MEDIA_PATH, Direction, StreamParameters

# What the simulated lead says when no audio is given: generated with the TTS engine itself.
GENERATED_LEAD_LINES = (
    "Hi, yes, I have a minute.",
    "How much does it cost?",
    "Okay, thanks. Bye.",
)
SIMULATED_LEAD = "Sam Simulated"
FAST_SPEED = 2.0  # call clock / wall clock when realtime is off
MAX_LEAD_FILES = 20
SIMULATED_CONNECT_S = 30.0  # a prepared greeting's lifetime if the simulated call never starts
# How long the simulated lead waits in silence before taking the agent's reply as finished
# (call-clock ms): a real voice on a busy CPU can pause that long between two sentences.
LEAD_PATIENCE_MS = 1500

Signer = Callable[[str], Mapping[str, str]]  # ws URL -> upgrade headers (X-Twilio-Signature)


LeadLine = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]


class SimulateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lead_audio: list[str] | None = Field(None, max_length=MAX_LEAD_FILES)
    # What the lead says, spoken by the TTS engine (instead of audio files)
    lead_lines: list[LeadLine] | None = Field(None, min_length=1, max_length=MAX_LEAD_FILES)
    # The campaign the call belongs to: its playbook (if any) answers
    campaign: str | None = Field(None, min_length=1, max_length=200)
    realtime: bool = True

    @model_validator(mode="after")
    def _one_source(self) -> SimulateParams:
        if self.lead_audio and self.lead_lines:
            raise ValueError("give lead_audio or lead_lines, not both")
        return self


class HangupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    call_id: str = Field(min_length=1, max_length=64)


def media_ws_url(http_base_url: str) -> str:
    """http://host:port -> ws://host:port/twilio/media (https -> wss)."""
    base = http_base_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://"):] + MEDIA_PATH
    if base.startswith("http://"):
        return "ws://" + base[len("http://"):] + MEDIA_PATH
    raise ValidationError(f"not an http(s) URL: {http_base_url}")


async def lead_utterances(paths: list[str] | None, tts: TextToSpeech,
                          lines: list[str] | None = None) -> list[Utterance]:
    """The lead's lines: from audio files (daemon-side paths), else `lines` (default: a few
    generic ones) spoken by the TTS engine."""
    if paths:
        utterances = []
        for raw in paths:
            path = Path(raw)
            if not path.is_absolute() or not await asyncio.to_thread(path.is_file):
                raise ValidationError(f"lead audio {raw}: not an absolute path to a file")
            try:
                utterances.append(await asyncio.to_thread(Utterance.from_file, path))
            except ReautodError:
                raise
            except Exception as err:  # soundfile's errors: unreadable or not audio
                raise ValidationError(f"lead audio {raw}: cannot read it as audio ({err})"
                                      ) from err
        return utterances
    utterances = []
    for line in lines or GENERATED_LEAD_LINES:
        pcm = bytearray()
        rate = tts.sample_rate
        async for chunk in tts.synthesize(line, call_id="simulate-lead"):
            pcm += chunk.pcm
            rate = chunk.sample_rate
        samples = np.frombuffer(bytes(pcm), dtype=np.int16).astype(np.float32) / 32768.0
        if samples.size:
            utterances.append(Utterance.from_samples(samples, rate, label=line))
    return utterances


def _script(utterances: list[Utterance]) -> list[Step]:
    wait = WaitForAgent(quiet_ms=LEAD_PATIENCE_MS, timeout_s=30)
    steps: list[Step] = [wait]
    for utterance in utterances:
        steps += [utterance, wait]
    steps.append(Hangup())
    return steps


def _summary(result: CallResult) -> SimulatorSummary:
    return SimulatorSummary(
        ended_by=result.ended_by,
        duration_s=round(result.duration_s, 3),
        close_code=result.close_code,
        voice_to_voice_s=[round(x, 4) for x in result.latencies_s],
        marks_sent=result.marks_received,
        marks_echoed=result.marks_echoed,
        agent_audio_s=round(result.agent_bytes_received / 8000, 3),
        timeouts=[t.step for t in result.timeouts],
        malformed=result.malformed,
    )


def call_methods(
    manager: CallManager,
    http_base_url_getter: Callable[[], str],
    sign: Signer | None = None,
    client_ssl: Callable[[], ssl.SSLContext | None] = lambda: None,
) -> list[Method]:
    """The pipeline's control-socket methods; `sign` adds Twilio's signature when one is checked,
    `client_ssl` is the TLS context for a wss:// base URL (the daemon's own port with TLS on)."""

    async def calls_list(_: NoParams) -> LiveCallList:
        return LiveCallList(calls=[info.result() for info in manager.live_calls()])

    async def call_hangup(params: HangupParams) -> HangupResult:
        await manager.hangup(params.call_id)
        return HangupResult(call_id=params.call_id, hanging_up=True)

    async def call_simulate(params: SimulateParams) -> SimulationResult:
        manager.check_admission()
        call_id = f"sim-{uuid.uuid4().hex[:12]}"
        # As for a dialed call, the greeting is synthesized before the call connects (here,
        # while the lead's lines are being made).
        campaign = params.campaign or "simulate"
        turns = manager.tap_turns(call_id)
        try:
            # a campaign's playbook agent is found now, and its own opening made
            await manager.prepare_opening(call_id, lead_name=SIMULATED_LEAD,
                                          expires_in_s=SIMULATED_CONNECT_S, campaign=campaign)
            utterances = await lead_utterances(params.lead_audio, manager.engines.tts,
                                               params.lead_lines)
            url = media_ws_url(http_base_url_getter())
            result = await run_call(
                CallOptions(
                    url=url,
                    headers=dict(sign(url)) if sign is not None else {},
                    ssl=client_ssl() if url.startswith("wss://") else None,
                    speed=1.0 if params.realtime else FAST_SPEED,
                    record_audio=False,
                    custom_parameters=StreamParameters(
                        call_id=call_id, lead_name=SIMULATED_LEAD, campaign=campaign,
                        direction=Direction.OUTBOUND).custom_parameters(),
                ),
                _script(utterances),
            )
        finally:
            manager.untap(call_id)
            manager.drop_greeting(call_id)  # no-op once the call took it
        return SimulationResult(call_id=call_id, turns=list(turns),
                                simulator=_summary(result))

    return [
        Method("calls.list", calls_list, summary="live calls"),
        Method("call.hangup", call_hangup, HangupParams, summary="politely end a live call",
               changes_state=True),
        Method("call.simulate", call_simulate, SimulateParams, changes_state=True,
               summary="place a simulated call to this daemon and report each turn"),
    ]
