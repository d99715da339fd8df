"""A whole dialed call, offline: a real reautod subprocess, the local Twilio stand-in as Twilio's
REST API and callback sender, and the simulator as the phone on the media stream.

reautoctl creates a campaign, imports leads and starts it; the dialer places a call at the
stand-in with the stream TwiML; the stand-in drives signed status callbacks; the simulator
connects with a valid signature and the TwiML's parameters; turns happen on the test models;
the caller hangs up, reautod hangs up the line, the stand-in reports `completed`. The database
then holds the status timeline, the outcome, the turns, the blocked dial of a lead outside its
window and of a lead on the DNC list."""

from __future__ import annotations

import asyncio
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from twilio.request_validator import RequestValidator

from reautod.config import DatabaseSettings
from reautod.store.database import Database
from reautod.store.repositories import (
    CallRepository,
    CampaignRepository,
    DialBlockRepository,
    LeadRepository,
)
from reautod.telephony.simulator import (
    CallOptions,
    Hangup,
    SimulatorError,
    Utterance,
    WaitForAgent,
    run_call,
)
from tests.fixtures.daemon import wait_until
from tests.fixtures.services import free_port
from tests.speech import SPEECH_DIR
from tests.telephony.twilio_standin import TwilioStandIn

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

ACCOUNT = "AC" + "2" * 32
TOKEN = "e2e-auth-token"
FROM = "+15005550006"
# Zones spread around the clock: some are always inside 09-19 and some inside 00-05 right now.
ZONES = ("Pacific/Honolulu", "America/Anchorage", "America/Los_Angeles", "America/Chicago",
         "America/New_York", "America/Sao_Paulo", "Atlantic/Azores", "Europe/London",
         "Europe/Berlin", "Europe/Moscow", "Asia/Dubai", "Asia/Kolkata", "Asia/Bangkok",
         "Asia/Tokyo", "Australia/Sydney", "Pacific/Auckland", "Pacific/Kiritimati")


def zone_where(hours: range) -> str:
    now = datetime.now(UTC)
    return next(z for z in ZONES if now.astimezone(ZoneInfo(z)).hour in hours)


def speech(name: str) -> Utterance:
    path = SPEECH_DIR / name
    if not path.exists():
        pytest.skip(f"speech fixture {path} not present")
    return Utterance.from_file(path)


async def in_db(url: str, work: Callable[[Database], Any]) -> Any:
    db = Database(url, DatabaseSettings(pool_size=2, max_overflow=0))
    await db.open()
    try:
        return await work(db)
    finally:
        await db.close()


def standin_config(state_dir: Path, database_url: str, port: int, models_dir: str | Path,
                   standin: TwilioStandIn, account: str) -> str:
    """A daemon that dials through the stand-in on `port`, with the test models."""
    return (
        f'state_dir = "{state_dir}"\n'
        f'database_url = "{database_url}"\n'
        "auto_migrate = true\n"
        "shutdown_grace_s = 5\n"
        f'[http]\nport = {port}\npublic_base_url = "http://127.0.0.1:{port}"\n'
        "[metrics]\nport = 0\n"
        f'[models]\ndir = "{models_dir}"\nprofile = "test"\ndevice = "cpu"\n'
        "[calls]\nreprompt_after_silence_s = 30\nhangup_after_silence_s = 60\n"
        f'[twilio]\naccount_sid = "{account}"\nfrom_number = "{FROM}"\n'
        f'api_base_url = "{standin.base_url}"\n'
    )


def json_ctl(d: Any) -> Callable[..., Any]:
    """`reautoctl ... --json` on daemon `d`, asserting success, parsed."""
    def ctl(*args: str) -> Any:
        result = d.ctl(*args, "--json")
        assert result.returncode == 0, (args, result.stdout, result.stderr, d.log()[-3000:])
        return json.loads(result.stdout)
    return ctl


def stream_of(twiml: str) -> tuple[str, dict[str, str]]:
    root = ET.fromstring(twiml)
    stream = root.find("./Connect/Stream")
    assert stream is not None, twiml
    params = {p.attrib["name"]: p.attrib["value"] for p in stream.findall("Parameter")}
    return stream.attrib["url"], params


def test_dialed_call_end_to_end(daemon_factory: Any, fresh_database_url: str,
                                      test_model_overrides: dict[str, Any],
                                      tmp_path: Path) -> None:
    hello = speech("ps_librivox_sense_and_sensibility_0880.wav")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    models = test_model_overrides["models"]
    with TwilioStandIn(ACCOUNT, TOKEN) as standin:
        d = daemon_factory(env={"REAUTOD_SECRET_TWILIO_AUTH_TOKEN": TOKEN})
        d.config_path.write_text(standin_config(d.workdir / "state", fresh_database_url, port,
                                                models["dir"], standin, ACCOUNT))
        d.start()
        d.wait_ready(timeout=240)
        ctl = json_ctl(d)

        awake, asleep = zone_where(range(9, 19)), zone_where(range(0, 6))
        leads = tmp_path / "leads.csv"
        leads.write_text(
            "name,phone,timezone\n"
            f"Ann Awake,+12125550100,{awake}\n"
            f"Bob Asleep,+12125550101,{asleep}\n"
            f"Dee Donotcall,+12125550102,{awake}\n"
            "Bad Row,12345,\n"
        )
        created = ctl("campaign", "create", "e2e", "--hours", "00:00-23:59", "--days", "mon-sun")
        assert created["status"] == "draft"
        report = ctl("campaign", "import", "e2e", str(leads))
        assert report["summary"]["imported"] == 3 and report["summary"]["rejected"] == 1
        assert [i["problem"] for i in report["issues"]] == ["bad_phone"]

        added = ctl("dnc", "add", "+12125550102", "--reason", "asked by email")
        assert added == {"number": "+12125550102", "scope": "global", "campaign": None}
        assert ctl("dnc", "check", "+12125550102", "--campaign", "e2e")["suppressed"] is True
        assert ctl("campaign", "start", "e2e")["status"] == "active"

        # The dialer places exactly one call: to the lead inside its window, not on the DNC list.
        create = wait_until("calls.create", lambda: next(iter(standin.requests_to("/Calls.json")),
                                                         None))
        form = create.form
        assert create.authorized and form["To"] == ["+12125550100"] and form["From"] == [FROM]
        assert "Record" not in form
        assert form["StatusCallback"] == [f"{base}/twilio/status"]
        assert form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
        assert form["MachineDetection"] == ["Enable"] and form["AsyncAmd"] == ["true"]
        assert form["AsyncAmdStatusCallback"] == [f"{base}/twilio/amd"]
        ws_url, params = stream_of(form["Twiml"][0])
        assert ws_url == f"ws://127.0.0.1:{port}/twilio/media"
        assert params["campaign"] == "e2e" and params["lead_name"] == "Ann Awake"
        assert params["direction"] == "outbound"
        assert params["opening"].startswith("Hi {lead_name}, this is Alex, an automated "
                                            "assistant calling from Acme Solar. To stop these "
                                            "calls, say stop or press 9.")
        call_id = params["call_id"]
        sid = next(iter(standin.calls))

        # Twilio's callbacks, signed; an unsigned one is refused and changes nothing.
        unsigned = httpx.post(f"{base}/twilio/status", data={"CallSid": sid,
                                                             "CallStatus": "completed"})
        assert unsigned.status_code == 403
        for status in ("initiated", "ringing", "in-progress"):
            assert standin.send_status(base, sid, status).status_code == 200

        # The phone: a bad signature is refused at the upgrade, the right one gets the call.
        signature = RequestValidator(TOKEN).compute_signature(ws_url, {})
        with pytest.raises(SimulatorError) as refused:
            asyncio.run(run_call(
                CallOptions(url=ws_url, headers={"X-Twilio-Signature": "x" * 28},
                            custom_parameters=params, call_sid=sid),
                [Hangup()]))
        assert refused.value.status == 403
        result = asyncio.run(run_call(
            CallOptions(url=ws_url, headers={"X-Twilio-Signature": signature},
                        custom_parameters=params, call_sid=sid, record_audio=False),
            [WaitForAgent(timeout_s=60), hello, WaitForAgent(timeout_s=60), Hangup()],
        ))
        assert result.agent_bytes_received > 0 and result.malformed == 0

        # The conversation is over: reautod hangs up the line; Twilio then reports completed.
        hangup = wait_until("the REST hang-up", lambda: next(
            (r for r in standin.requests_to(f"/Calls/{sid}.json")
             if r.form.get("Status") == ["completed"]), None))
        assert hangup.authorized
        assert standin.send_status(base, sid, "completed").status_code == 200
        assert standin.send_status(base, sid, "ringing", sequence=1).status_code == 200  # late

        async def finished(db: Database) -> bool:
            row = await CallRepository(db).by_sid(sid)
            return row is not None and row.outcome is not None and row.lead_id is not None \
                and (await LeadRepository(db).get(row.lead_id)).status == "exhausted"

        wait_until("the call's end in the database",
                   lambda: asyncio.run(in_db(fresh_database_url, finished)), timeout=60)

        async def facts(db: Database) -> dict[str, Any]:
            calls = CallRepository(db)
            row = await calls.by_sid(sid)
            assert row is not None
            campaign = await CampaignRepository(db).find("e2e")
            return {
                "row": row,
                "timeline": await calls.timeline(row.id),
                "turns": await calls.turns(row.id),
                "blocks": await DialBlockRepository(db).recent(campaign_id=campaign.id),
                "leads": await LeadRepository(db).status_counts(campaign.id),
                "all_calls": await calls.recent(campaign_id=campaign.id),
            }

        got = asyncio.run(in_db(fresh_database_url, facts))
        row = got["row"]
        assert str(row.id) == call_id and row.status == "completed"
        assert row.outcome == "unknown" and row.answered_at is not None and row.ended_at
        assert row.to_number == "+12125550100" and row.stream_sid is not None
        steps = [(e.status, e.source, e.sequence) for e in got["timeline"]]
        assert {s for s, _, _ in steps} == {"queued", "initiated", "ringing", "in_progress",
                                             "completed"}, steps
        # Twilio's own steps keep their SequenceNumbers (the late ringing changed nothing).
        assert {(s, q) for s, src, q in steps if src == "twilio"} >= {("initiated", 0),
                                                                      ("ringing", 1)}, steps
        assert len(steps) == 5, steps
        speakers = [t.speaker for t in got["turns"]]
        assert speakers[0] == "agent" and "caller" in speakers and len(speakers) >= 3
        assert got["turns"][0].text == params["opening"].replace("{lead_name}", "Ann Awake")
        rules = {(b.rule_code, b.reason) for b in got["blocks"]}
        assert rules == {("federal_hours", "window"), ("dnc_global", "dnc")}
        assert got["leads"] == {"exhausted": 1, "retry": 1, "dnc": 1}
        assert len(got["all_calls"]) == 1  # nobody else was dialed

        shown = ctl("call", "show", call_id)
        assert shown["status"] == "completed" and len(shown["turns"]) == len(got["turns"])
        status = ctl("campaign", "status", "e2e")
        assert status["blocked_by_rule"] == {"federal_hours": 1, "dnc_global": 1}
        history = ctl("call", "history", "--campaign", "e2e")
        assert [c["call_id"] for c in history["calls"]] == [call_id]
        metrics = httpx.get(f"http://127.0.0.1:{ctl('status')['metrics_port']}/metrics").text
        assert re.search(r'reautod_dial_attempts_blocked_total\{reason="window"\} 1\.0', metrics)
        assert re.search(r'reautod_dial_attempts_blocked_total\{reason="dnc"\} 1\.0', metrics)
        failures = re.search(r"reautod_webhook_signature_failures_total (\d+)\.0", metrics)
        assert failures is not None and int(failures.group(1)) == 2  # the status post, the WS


def test_simulated_call_passes_the_signature_check(daemon_factory: Any,
                                                   test_model_overrides: dict[str, Any]) -> None:
    """With Twilio configured the media WebSocket checks signatures; `reautoctl call simulate`
    signs its upgrade like Twilio would, so operators can still test the pipeline."""
    port = free_port()
    models = test_model_overrides["models"]
    d = daemon_factory(env={"REAUTOD_SECRET_TWILIO_AUTH_TOKEN": TOKEN})
    d.config_path.write_text(
        f'state_dir = "{d.workdir / "state"}"\n'
        "shutdown_grace_s = 5\n"
        f'[http]\nport = {port}\npublic_base_url = "https://voice.example.com"\n'
        "[metrics]\nport = 0\n"
        f'[models]\ndir = "{models["dir"]}"\nprofile = "test"\ndevice = "cpu"\n'
        f'[twilio]\naccount_sid = "{ACCOUNT}"\nfrom_number = "{FROM}"\n'
    )
    d.start()
    d.wait_ready(timeout=240)
    health = json.loads(d.ctl("health", "--json").stdout)
    assert health["checks"]["twilio"]["ok"] is True
    # an unsigned upgrade is refused
    with pytest.raises(SimulatorError) as refused:
        asyncio.run(run_call(CallOptions(url=f"ws://127.0.0.1:{port}/twilio/media"), [Hangup()]))
    assert refused.value.status == 403
    result = d.ctl("call", "simulate", "--fast", "--json", timeout=300)
    assert result.returncode == 0, (result.stdout, result.stderr, d.log()[-3000:])
    data = json.loads(result.stdout)
    assert data["simulator"]["ended_by"] != "refused" and data["turns"], data
    assert data["turns"][0]["speaker"] == "agent"


def test_without_twilio_the_daemon_runs_and_dialing_says_what_to_set(
        daemon_factory: Any) -> None:
    d = daemon_factory()
    d.config_path.write_text(
        f'state_dir = "{d.workdir / "state"}"\nshutdown_grace_s = 5\n'
        "[http]\nport = 0\n[metrics]\nport = 0\n"
    )
    d.start()
    d.wait_ready(timeout=120)
    assert d.ctl("campaign", "create", "later").returncode == 0
    for command in (("campaign", "start", "later"), ("dial", "+12125550100")):
        result = d.ctl(*command)
        assert result.returncode == 1, result
        assert "twilio.account_sid" in result.stderr and "twilio_not_configured" in result.stderr
        assert "REAUTOD_SECRET_TWILIO_AUTH_TOKEN" in result.stderr
    as_json = json.loads(d.ctl("campaign", "start", "later", "--json").stdout)
    assert as_json["error"]["code"] == "twilio_not_configured"
    listed = d.ctl("campaign", "list")
    assert listed.returncode == 0 and "later" in listed.stdout and "draft" in listed.stdout
    # no webhooks without a token to check them with
    port = json.loads(d.ctl("status", "--json").stdout)["http_port"]
    assert httpx.post(f"http://127.0.0.1:{port}/twilio/status").status_code == 404
