"""`reautoctl talk`: talk to the agent with this machine's microphone and speaker (or WAV files),
the transcript shown as it happens. The call is the daemon's own (`call.talk`: a WebRTC call
on the same engines, agent and records, transport `sounddevice`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from reautod.control.client import ControlClient
from reautod.control.context import CliContext, parse_result
from reautod.errors import ValidationError
from reautod.security.text import normalise_name, terminal_safe
from reautod.webrtc.signalling import Answer, Offer

if TYPE_CHECKING:  # the WebRTC and audio stack loads only when `talk` runs
    from reautod.webrtc.audio_io import AudioIO
    from reautod.webrtc.talk import HeardTurn

OFFER_TIMEOUT_S = 30.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "talk", help="talk to the agent with the microphone and speaker",
        description="Call the agent from this machine: it greets you, you answer into the "
        "microphone, it replies through the speaker; the transcript is printed as it goes. "
        "Ctrl-C hangs up. Without audio hardware, --from-wav speaks a file instead (the call "
        "ends with the agent's first line after the file is over).")
    parser.add_argument("--name", default="", metavar="NAME",
                        help="the name the agent greets you by")
    parser.add_argument("--campaign", metavar="NAME",
                        help="the campaign the call belongs to: its playbook's agent answers "
                        "(default: the configured agent)")
    parser.add_argument("--from-wav", type=Path, metavar="FILE",
                        help="speak this audio file instead of the microphone")
    parser.add_argument("--to-wav", type=Path, metavar="FILE",
                        help="with --from-wav: write what the agent said to this WAV file")
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="one JSON object per transcript line, then one with the call's "
                        "id and why it ended")
    parser.set_defaults(func=run)


def _render(turn: HeardTurn) -> str:
    who = "agent" if turn.speaker == "agent" else "you"
    cut = " [interrupted]" if turn.interrupted else ""
    return f"{who:>5}: {terminal_safe(turn.text)}{cut}"


async def converse(ctx: CliContext, audio: AudioIO, name: str, campaign: str | None = None
                   ) -> int:
    from reautod.webrtc.audio_io import WavFileIO
    from reautod.webrtc.talk import talk

    async with ControlClient(ctx.socket_path, timeout=OFFER_TIMEOUT_S) as client:
        async def offer(request: Offer) -> Answer:
            return parse_result(Answer, "call.talk",
                                await client.call("call.talk", request.model_dump()))

        def show(turn: HeardTurn) -> None:
            if ctx.json:
                ctx.out.write(json.dumps({"speaker": turn.speaker, "text": turn.text,
                                          "interrupted": turn.interrupted}) + "\n")
            else:
                ctx.out.write(_render(turn) + "\n")
            ctx.out.flush()
            if isinstance(audio, WavFileIO) and audio.finished and turn.speaker == "agent":
                hangup.set()  # the file said its piece and the agent answered it

        hangup = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(signal.SIGINT, hangup.set)
        try:
            result = await talk(offer, audio, lead_name=name, campaign=campaign,
                                on_turn=show, hangup=hangup)
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)
            await audio.close()
    if ctx.json:
        ctx.out.write(json.dumps({"call_id": result.call_id, "ended": result.reason}) + "\n")
    else:
        ctx.out.write(f"call {result.call_id} ended: {terminal_safe(result.reason)}\n")
    return 0


def run(args: argparse.Namespace, ctx: CliContext) -> int:
    if args.to_wav is not None and args.from_wav is None:
        raise ValidationError("--to-wav needs --from-wav (the speaker plays the agent otherwise)")
    try:  # refused here as the daemon would, before the sound card opens
        campaign = None if args.campaign is None else normalise_name(args.campaign)
    except ValueError as err:
        raise ValidationError(f"--campaign: {err}") from None

    async def main() -> int:
        from reautod.webrtc.audio_io import SoundDeviceIO, WavFileIO

        audio: AudioIO = (WavFileIO(args.from_wav, args.to_wav) if args.from_wav is not None
                          else SoundDeviceIO())
        return await converse(ctx, audio, args.name, campaign)

    return asyncio.run(main())
