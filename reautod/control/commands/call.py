"""`reautoctl call simulate|list|hangup|history|show|transfer|recover|audio`: simulated calls,
live calls, operator hang-up, the call history and one call's timeline, transfer to a human,
calls a crash left (resume or close), a recording as WAV."""

from __future__ import annotations

import argparse
import base64
import hashlib
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from reautod.campaigns.results import CallCostResult, CallDetail, CallHistory, TransferResult
from reautod.control.context import CliContext, key_values, table
from reautod.cost.money import format_micros
from reautod.dialogue.call_record import AgentRecord
from reautod.errors import ValidationError
from reautod.observability.logging import mask_name, mask_phone
from reautod.pipeline.results import HangupResult, LiveCallList, SimulationResult
from reautod.recovery.results import RecoverableCalls
from reautod.security.results import AudioChunk

SIMULATE_TIMEOUT_S = 600.0
STAGES = (("stt_s", "stt"), ("llm_first_token_s", "llm 1st tok"),
          ("tts_first_audio_s", "tts 1st audio"), ("voice_to_voice_s", "1st byte sent"))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("call", help="simulated calls, live calls, hang-up")
    calls = parser.add_subparsers(dest="call_command", metavar="ACTION", required=True)

    simulate = calls.add_parser(
        "simulate", help="place a simulated call to the daemon through its media WebSocket")
    simulate.add_argument("--lead-audio", metavar="FILE", nargs="+", action="extend",
                          help="audio files the simulated lead says, in order "
                               "(default: lines spoken by the TTS engine)")
    simulate.add_argument("--say", metavar="TEXT", action="append",
                          help="a line the simulated lead says (spoken by the TTS engine); "
                               "repeat for each turn")
    simulate.add_argument("--campaign", metavar="NAME",
                          help="the campaign the call belongs to (its playbook answers)")
    simulate.add_argument("--fast", action="store_true",
                          help="run the phone clock faster than real time")
    simulate.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                          help="machine-readable JSON output")
    simulate.set_defaults(func=run_simulate)

    listing = calls.add_parser("list", help="live calls")
    listing.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                         help="machine-readable JSON output")
    listing.set_defaults(func=run_list)

    hangup = calls.add_parser("hangup", help="politely end a live call (goodbye, then hang up)")
    hangup.add_argument("call_id", metavar="ID")
    hangup.set_defaults(func=run_hangup)

    # Twilio calls from the store (reautod.outbound.methods): history, one call, transfer.
    history = calls.add_parser("history", help="recent calls from the database, newest first")
    history.add_argument("--campaign", help="only this campaign's calls")
    history.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    history.set_defaults(func=run_history)

    show = calls.add_parser(
        "show", help="one call: status timeline, turns, cost; a playbook call's stages, score, "
                     "outcome and variant")
    show.add_argument("call_id", metavar="ID")
    show.set_defaults(func=run_show)

    transfer = calls.add_parser("transfer", help="transfer a live call to the campaign's human")
    transfer.add_argument("call_id", metavar="ID")
    transfer.set_defaults(func=run_transfer)

    recover = calls.add_parser(
        "recover", help="calls a crash left that can be resumed; resume or close one by hand")
    action = recover.add_mutually_exclusive_group()
    action.add_argument("--resume", metavar="SID",
                        help="point the call (CallSid or call id) at a resuming stream now")
    action.add_argument("--close", metavar="SID",
                        help="close the call as interrupted and hang up its phone line")
    recover.set_defaults(func=run_recover)

    audio = calls.add_parser("audio", help="a call's recording as a WAV file (decrypted)")
    audio.add_argument("call_id", metavar="ID")
    audio.add_argument("--direction", choices=("inbound", "outbound"), default="inbound",
                       help="inbound: the caller; outbound: the agent (default inbound)")
    audio.add_argument("--out", type=Path, required=True, help="the WAV file to write")
    audio.set_defaults(func=run_audio)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def render_simulation(result: SimulationResult) -> str:
    rows = []
    for turn in result.turns:
        flags = []
        if turn.interrupted:
            flags.append("interrupted")
        if turn.error:
            flags.append(f"error: {turn.error}")
        rows.append([
            turn.index, turn.speaker,
            turn.text[:60] + (" [" + ", ".join(flags) + "]" if flags else ""),
            "-" if turn.confidence is None else f"{turn.confidence:.2f}",
            *(_ms(turn.latencies.get(key)) if turn.speaker == "agent" or key == "stt_s"
              else "-" for key, _ in STAGES),
        ])
    sim = result.simulator
    summary = key_values([
        ("call", result.call_id),
        ("ended by", sim.ended_by.value),
        ("duration", f"{sim.duration_s:.1f}s"),
        ("marks echoed", f"{sim.marks_echoed}/{sim.marks_sent}"),
        ("voice-to-voice (phone side)",
         ", ".join(_ms(x) + " ms" for x in sim.voice_to_voice_s) or "-"),
    ])
    headers = ["#", "who", "text", "conf", *(f"{label} ms" for _, label in STAGES)]
    note = ("latencies in ms from the end of the caller's speech: transcript, first LLM token, "
            "first TTS audio, first audio byte sent")
    return f"{table(headers, rows)}\n\n{note}\n{summary}"


def run_simulate(args: argparse.Namespace, ctx: CliContext) -> int:
    files = [str(Path(f).resolve()) for f in (args.lead_audio or [])]
    for f in files:
        if not Path(f).is_file():
            print(f"reautoctl: {f}: no such file", file=sys.stderr)
            return 1
    if files and args.say:
        print("reautoctl: give --lead-audio or --say, not both", file=sys.stderr)
        return 1
    params: dict[str, Any] = {"lead_audio": files or None, "realtime": not args.fast}
    if args.say:
        params["lead_lines"] = args.say
    if args.campaign:
        params["campaign"] = args.campaign
    ctx.emit(ctx.fetch(SimulationResult, "call.simulate", params, timeout=SIMULATE_TIMEOUT_S),
             render_simulation)
    return 0


def render_list(listing: LiveCallList) -> str:
    if not listing.calls:
        return "no live calls"
    rows = [[c.call_id, c.state.value, mask_name(c.lead_name), c.campaign, c.direction,
             c.transport, c.started_at.isoformat(), c.turns, _ms(c.last_voice_to_voice_s),
             c.engine_failures]
            for c in listing.calls]
    return table(["call", "state", "lead", "campaign", "dir", "transport", "started", "turns",
                  "last v2v ms", "failures"], rows)


def run_list(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.emit(ctx.fetch(LiveCallList, "calls.list"), render_list)
    return 0


def run_hangup(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.emit(ctx.fetch(HangupResult, "call.hangup", {"call_id": args.call_id}),
             lambda h: f"hanging up {h.call_id}")
    return 0


def render_history(history: CallHistory) -> str:
    if not history.calls:
        return "no calls"
    rows = [[c.call_id, c.direction, c.transport, c.status, c.outcome, c.amd_result,
             mask_phone(c.to), c.created_at.isoformat(),
             "-" if c.duration_ms is None else f"{c.duration_ms / 1000:.1f}s"]
            for c in history.calls]
    return table(["call", "dir", "transport", "status", "outcome", "amd", "to", "created",
                  "duration"], rows)


def run_history(args: argparse.Namespace, ctx: CliContext) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.campaign:
        params["campaign"] = args.campaign
    ctx.emit(ctx.fetch(CallHistory, "calls.history", params), render_history)
    return 0


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def render_show(call: CallDetail) -> str:
    summary = key_values([
        ("call", call.call_id), ("twilio sid", call.call_sid),
        ("direction", call.direction), ("transport", call.transport), ("status", call.status),
        ("outcome", call.outcome), ("amd", call.amd_result),
        ("to", mask_phone(call.to)), ("created", _iso(call.created_at)),
        ("answered", _iso(call.answered_at)), ("ended", _iso(call.ended_at)),
        ("disposition", call.disposition),
        ("cost", _cost(call.cost)),
    ])
    timeline = table(["status", "at", "source", "seq"],
                     [[e.status, e.at.isoformat(), e.source, e.sequence] for e in call.timeline])
    turns = table(["#", "who", "text", "response ms"],
                  [[t.seq, t.speaker, t.text[:70], t.response_ms] for t in call.turns])
    shown = f"{summary}\n\n{timeline}\n\n{turns}"
    return shown if call.agent is None else f"{shown}\n\n{render_agent(call.agent)}"


def render_agent(record: AgentRecord) -> str:
    """The agent's side of a playbook call: what it ran, how it moved, scored and decided."""
    last = record.scores[-1] if record.scores else None
    summary = key_values([
        ("playbook", f"{record.playbook} {record.version or ''}".strip()),
        ("variant", record.variant),
        ("outcome", record.outcome), ("disposition", record.disposition),
        ("score", "-" if last is None else last.reason or str(last.score)),
        ("appointment", "-" if record.appointment is None else
         f"{record.appointment.starts_at} UTC ({record.appointment.timezone}, "
         f"{record.appointment.status})"),
    ])
    moves = table(["#", "from", "to", "why", "at"],
                  [[t.seq, t.from_stage or "-", t.to_stage, (t.reason or "")[:50], t.at]
                   for t in record.transitions])
    scores = table(["score", "factors", "at"],
                   [[s.score, ", ".join(f"{f.fact}={_value(f.value)} {f.points}x{f.weight:g}"
                                        for f in s.factors), s.at]
                    for s in record.scores])
    parts = [f"agent\n{summary}", f"stages\n{moves}", f"scores\n{scores}"]
    if record.decisions:
        parts.append("tools\n" + table(
            ["#", "stage", "tool", "status", "when", "detail"],
            [[d.seq, d.stage, d.tool, d.status, d.spoken or "-", (d.detail or "")[:40]]
             for d in record.decisions]))
    return "\n\n".join(parts)


def _value(value: str | float | None) -> str:
    """A fact's value in a table cell: a caller's own words clipped."""
    if value is None:
        return "-"
    text = f"{value:g}" if isinstance(value, float) else value
    return text if len(text) <= 24 else text[:23] + "…"


def _cost(cost: CallCostResult) -> str:
    if not cost.rows:
        return "-"
    parts = ", ".join(f"{service} {format_micros(micros)}"
                      for service, micros in sorted(cost.by_service.items()))
    return f"{format_micros(cost.total_micros)} ({parts})"


def run_show(args: argparse.Namespace, ctx: CliContext) -> int:
    ctx.emit(ctx.fetch(CallDetail, "call.show", {"call_id": args.call_id}), render_show)
    return 0


def run_audio(args: argparse.Namespace, ctx: CliContext) -> int:
    """Fetch the WAV a chunk at a time; written to a temporary name, checked against the stored
    checksum, then renamed, so a cut-short or altered copy never stands as the recording."""
    digest = hashlib.sha256()
    partial = args.out.with_name(args.out.name + ".part")
    offset, size, expected = 0, None, ""
    with partial.open("wb") as out:
        while size is None or offset < size:
            chunk = ctx.fetch(AudioChunk, "call.audio", {
                "call_id": args.call_id, "direction": args.direction, "offset": offset},
                timeout=120.0)
            data = base64.b64decode(chunk.data)
            if not data:
                break
            size, expected = chunk.size, chunk.sha256
            out.write(data)
            digest.update(data)
            offset += len(data)
    if size is None or offset != size or digest.hexdigest() != expected:
        partial.unlink(missing_ok=True)
        raise ValidationError("the recording did not arrive whole or does not match its stored "
                              "checksum", code="checksum_mismatch")
    partial.replace(args.out)
    ctx.emit({"file": str(args.out), "bytes": size, "sha256": expected},
             lambda d: f"wrote {d['file']} ({d['bytes']} bytes, sha256 matches)")
    return 0


def run_transfer(args: argparse.Namespace, ctx: CliContext) -> int:
    moved = ctx.fetch(TransferResult, "call.transfer", {"call_id": args.call_id})
    ctx.emit(moved, lambda m: f"transferring {m.call_id} to {mask_phone(m.transferred_to)}")
    return 0


def render_recoverable(listing: RecoverableCalls) -> str:
    if not listing.calls:
        return "no recoverable calls"
    rows = [[c.call_id, c.call_sid, mask_name(c.lead_name), c.campaign, c.turns, c.stage,
             c.updated_at.isoformat(timespec="seconds"),
             c.resumable_until.isoformat(timespec="seconds")
             if c.resumable and c.resumable_until is not None else "no"]
            for c in listing.calls]
    return table(["call", "sid", "lead", "campaign", "turns", "stage", "last change",
                  "resumable until"], rows)


def run_recover(args: argparse.Namespace, ctx: CliContext) -> int:
    params = ({"resume": args.resume} if args.resume else
              {"close": args.close} if args.close else {})
    result = ctx.fetch(RecoverableCalls, "call.recover", params)
    if result.done is not None:
        done = result.done
        ctx.emit(done, lambda d: f"{d.action} {d.call_id}" + (f" ({d.detail})" if d.detail else ""))
        return 0
    ctx.emit(result, render_recoverable)
    return 0
