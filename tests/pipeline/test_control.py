"""The pipeline's control methods (in-process, against a real media server) and `reautoctl call`."""

from __future__ import annotations

import argparse
import io
import uuid
from typing import Any

import pytest

from reautod.campaigns.results import CallHistory
from reautod.control.commands import call as call_cmd
from reautod.control.context import CliContext
from reautod.errors import NotFoundError, ValidationError
from reautod.pipeline.control import lead_utterances, media_ws_url
from reautod.pipeline.results import LiveCallList, SimulationResult, SimulatorSummary
from reautod.telephony.sim_result import EndedBy
from tests.pipeline.conftest import (
    SPEECH_DIR,
    call_method,
    control_method,
    serve_media,
    wait_for,
)
from tests.pipeline.fakes import FakeEngines, FakeTTS
from tests.pipeline.rawclient import closed, open_call

pytestmark = pytest.mark.timeout(180)


async def test_simulate_reports_each_turn_with_latencies() -> None:
    audio = SPEECH_DIR / "ps_librivox_sense_and_sensibility_0880.wav"
    if not audio.exists():
        pytest.skip("speech fixture not present")
    engines = FakeEngines()
    async with serve_media(engines) as served:
        out = await call_method(control_method(served, "call.simulate"), lead_audio=[str(audio)])
    turns = out["turns"]
    assert [t["speaker"] for t in turns] == ["agent", "caller", "agent"]
    assert turns[0]["text"].startswith("Hi Sam Simulated")
    assert turns[1]["text"] == "I would like to hear more" and turns[1]["confidence"] == 0.87
    assert set(turns[2]["latencies"]) == {"stt_s", "llm_first_token_s", "tts_first_audio_s",
                                          "voice_to_voice_s"}
    assert out["simulator"]["ended_by"] and out["simulator"]["marks_echoed"] >= 2
    assert out["call_id"].startswith("sim-") and served.observer.reason(out["call_id"]) == "stop"
    # reautoctl parses the answer with the result model and shows every turn and the latency
    # columns.
    text = call_cmd.render_simulation(SimulationResult.model_validate(out))
    assert "I would like to hear more" in text and "1st byte sent ms" in text


async def test_simulate_rejects_bad_lead_audio(tmp_path: Any) -> None:
    not_audio = tmp_path / "x.wav"
    not_audio.write_text("not audio")
    async with serve_media(FakeEngines()) as served:
        method = control_method(served, "call.simulate")
        with pytest.raises(ValidationError):
            await call_method(method, lead_audio=["relative.wav"])
        with pytest.raises(ValidationError):
            await call_method(method, lead_audio=[str(not_audio)])


async def test_generated_lead_lines_come_from_the_tts_engine() -> None:
    tts = FakeTTS()
    utterances = await lead_utterances(None, tts)
    assert len(utterances) == 3 and all(u.duration_s > 0.3 for u in utterances)
    assert [t for _, t in tts.texts] == ["Hi, yes, I have a minute.", "How much does it cost?",
                                         "Okay, thanks. Bye."]


async def test_list_and_hangup_methods() -> None:
    async with serve_media(FakeEngines()) as served:
        ws = await open_call(served.url, "lh1", lead_name="Jane Doe", campaign="spring")
        await wait_for(lambda: served.manager.session("lh1") is not None)
        listed = await call_method(control_method(served, "calls.list"))
        assert [(c["call_id"], c["lead_name"], c["campaign"]) for c in listed["calls"]] == [
            ("lh1", "Jane Doe", "spring")]
        assert "J*** D**" in call_cmd.render_list(LiveCallList.model_validate(listed))
        hangup = control_method(served, "call.hangup")
        with pytest.raises(NotFoundError):
            await call_method(hangup, call_id="nope")
        assert await call_method(hangup, call_id="lh1") == {
            "call_id": "lh1", "hanging_up": True}
        await closed(ws, timeout=20)
    assert served.observer.reason("lh1") == "operator"


def test_media_ws_url() -> None:
    assert media_ws_url("http://127.0.0.1:8080/") == "ws://127.0.0.1:8080/twilio/media"
    assert media_ws_url("https://x.example") == "wss://x.example/twilio/media"
    with pytest.raises(ValidationError):
        media_ws_url("ftp://x")


def test_cli_simulate_sends_absolute_paths(tmp_path: Any, monkeypatch: Any) -> None:
    audio = tmp_path / "hello.wav"
    audio.write_bytes(b"RIFF")
    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    call_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["call", "simulate", "--lead-audio", "hello.wav", "--json"])
    sent: list[tuple[str, Any, float]] = []
    ctx = CliContext(config_arg=None, socket_arg=None, json=bool(args.json), out=io.StringIO())

    def fake_call(method: str, params: Any = None, timeout: float = 30.0) -> Any:
        sent.append((method, params, timeout))
        return SimulationResult(call_id="sim-1", turns=[], simulator=SimulatorSummary(
            ended_by=EndedBy.HANGUP, duration_s=1.0, close_code=1000, voice_to_voice_s=[],
            marks_sent=0, marks_echoed=0, agent_audio_s=0.0, timeouts=[], malformed=0,
        )).model_dump(mode="json")

    monkeypatch.setattr(ctx, "call", fake_call)
    assert args.func(args, ctx) == 0
    assert sent == [("call.simulate", {"lead_audio": [str(audio)], "realtime": True}, 600.0)]
    assert '"call_id": "sim-1"' in ctx.out.getvalue()  # type: ignore[attr-defined]


def test_live_calls_and_the_history_show_how_each_caller_is_reached() -> None:
    vias = ("twilio", "webrtc", "sounddevice")
    at = "2026-12-06T12:00:00+00:00"
    live = LiveCallList.model_validate({"calls": [
        {"call_id": f"c{i}", "stream_sid": f"MZ{i}", "call_sid": None, "state": "listening",
         "lead_name": "Jane", "campaign": "spring", "direction": "outbound", "transport": via,
         "started_at": at} for i, via in enumerate(vias)]})
    stored = CallHistory.model_validate({"calls": [
        {"call_id": str(uuid.uuid4()), "call_sid": None, "campaign_id": None, "lead_id": None,
         "direction": "outbound", "transport": via, "status": "completed", "amd_result": None,
         "outcome": None, "disposition": None, "from": None, "to": None, "error_code": None,
         "created_at": at, "answered_at": None, "ended_at": None, "duration_ms": 1000}
        for via in vias]})
    for rendered in (call_cmd.render_list(live), call_cmd.render_history(stored)):
        header, _rule, *rows = rendered.splitlines()
        column = header.split().index("transport")
        assert [row.split()[column] for row in rows] == ["twilio", "webrtc", "sounddevice"]
