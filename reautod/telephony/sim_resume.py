"""Twilio's side of a media stream that dies mid-call: the `<Connect action>` request, then the
new stream its answer names (the simulator's part in reautod.recovery's crash test).

When a `<Connect><Stream>` ends without the caller hanging up (the server closed the socket or
the connection broke), Twilio requests the `<Connect>`'s action URL (a signed POST with the call's
CallSid and status) and runs the TwiML it gets: a new `<Connect><Stream>` opens a new stream
(new StreamSid, the same CallSid), `<Hangup/>` ends the call. This plays that:

    result = await run_call_resuming(options, script, ActionOptions(url=..., auth_token=...))
    result.legs            # one CallResult per stream
    result.answers         # the TwiML each action request got
    result.reconnect_s     # per resume: seconds from the stream's end to the new one's start

The action request is retried (connection refused, 5xx) until `ActionOptions.timeout_s`: a
daemon restarting without socket activation refuses connections for a while, where Twilio
would fail the request (with socket activation the request waits in the kernel's backlog). The
script goes on on the new stream from the step the old one was in when it died.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
from twilio.request_validator import RequestValidator

from reautod.telephony.signatures import SIGNATURE_HEADER
from reautod.telephony.sim_options import CallOptions, SimulatorError
from reautod.telephony.sim_result import CallResult, EndedBy
from reautod.telephony.sim_script import Step
from reautod.telephony.simulator import SimulatedCall


@dataclass(frozen=True)
class ActionOptions:
    """Where the action request goes and how it is signed."""

    url: str  # the action URL as the TwiML names it (the signature covers it)
    auth_token: str
    timeout_s: float = 60.0  # wall clock: keep retrying this long
    retry_s: float = 0.2
    max_streams: int = 5  # a call resumed more often than this ends
    # the TwiML's URLs (action, stream) as this machine reaches them; None: as written
    local: Callable[[str], str] | None = None


@dataclass(frozen=True)
class ResumedCallResult:
    legs: tuple[CallResult, ...]
    answers: tuple[str, ...]
    reconnect_s: tuple[float, ...]

    @property
    def resumed(self) -> int:
        return len(self.legs) - 1


def stream_in(twiml: str) -> tuple[str, dict[str, str]] | None:
    """The `<Connect><Stream>` URL and parameters of a TwiML answer; None when it has none."""
    root = ET.fromstring(twiml)
    stream = root.find("./Connect/Stream")
    if stream is None:
        return None
    params = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
    return stream.attrib["url"], params


async def request_action(action: ActionOptions, *, call_sid: str, account_sid: str,
                         status: str = "in-progress") -> str:
    """POST the action URL as Twilio does (signed form), retrying until it answers 200."""
    form = {"CallSid": call_sid, "AccountSid": account_sid, "CallStatus": status,
            "Direction": "outbound-api"}
    signature = RequestValidator(action.auth_token).compute_signature(action.url, form)
    url = action.local(action.url) if action.local else action.url
    deadline = time.monotonic() + action.timeout_s
    last = ""
    async with httpx.AsyncClient(timeout=15.0) as client:
        while True:
            try:
                response = await client.post(url, data=form,
                                              headers={SIGNATURE_HEADER: signature})
                if response.status_code == 200:
                    return response.text
                last = f"HTTP {response.status_code}"
                if response.status_code < 500:
                    raise SimulatorError(f"the action URL answered {last}: {response.text}",
                                         status=response.status_code)
            except httpx.TransportError as err:
                last = str(err) or type(err).__name__
            if time.monotonic() > deadline:
                raise SimulatorError(f"the action URL {url} did not answer: {last}")
            await asyncio.sleep(action.retry_s)


async def run_call_resuming(options: CallOptions, script: Sequence[Step],
                            action: ActionOptions,
                            then: Sequence[Step] | None = None) -> ResumedCallResult:
    """Run a call whose stream may die; see the module docstring. `then`: the script of every
    new stream (None: the rest of `script`, from the step the dead stream was in)."""
    legs: list[CallResult] = []
    answers: list[str] = []
    reconnects: list[float] = []
    steps = tuple(script)
    opts = options
    ended = time.monotonic()
    while True:
        call = SimulatedCall(opts, steps)
        started = time.monotonic()
        result = await call.run()
        if legs:
            reconnects.append(started - ended)
        legs.append(result)
        if result.ended_by is not EndedBy.SERVER or len(legs) >= action.max_streams:
            break
        ended = time.monotonic()
        twiml = await request_action(action, call_sid=opts.call_sid,
                                     account_sid=opts.account_sid)
        answers.append(twiml)
        stream = stream_in(twiml)
        if stream is None:
            break  # <Hangup/>: the call is over
        url, params = stream
        steps = tuple(then) if then is not None else steps[result.steps_completed:]
        signature = RequestValidator(action.auth_token).compute_signature(url, {})
        opts = dataclasses.replace(
            opts, url=action.local(url) if action.local else url, custom_parameters=params,
            stream_sid="MZ" + uuid.uuid4().hex, headers={SIGNATURE_HEADER: signature})
    return ResumedCallResult(tuple(legs), tuple(answers), tuple(reconnects))
