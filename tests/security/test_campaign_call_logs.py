"""No personal data in the daemon's log: a whole campaign call, dialed by the real daemon
(subprocess, INFO) through the local Twilio stand-in and answered by the simulator over the media
stream, leaves neither the lead's name, nor the number in any written form (also those that hide
only its last digits), nor a word of what was said, in any log line. Masked forms
(`mask_phone`: +1******0187) are what the log may carry, and the test checks it does, so it
cannot pass on an empty log."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from twilio.request_validator import RequestValidator

from reautod.observability.logging import mask_phone
from reautod.store.database import Database
from reautod.store.repositories import CallRepository
from reautod.telephony.simulator import CallOptions, Hangup, WaitForAgent, run_call
from tests.fixtures.daemon import wait_until
from tests.fixtures.services import free_port
from tests.telephony.test_dialed_call_e2e import (
    in_db,
    json_ctl,
    speech,
    standin_config,
    stream_of,
    zone_where,
)
from tests.telephony.twilio_standin import TwilioStandIn

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

ACCOUNT = "AC" + "7" * 32
TOKEN = "pii-auth-token"
NAME = "Zelda Quixote"
NUMBER = "+12125550187"


def written_forms(e164: str) -> set[str]:
    """How a (NANP) number shows up in text: E.164, national, with separators, and the prefixes
    a half-masked form (`+1212555****`) would leave readable."""
    national = e164[2:]
    area, exchange, line = national[:3], national[3:6], national[6:]
    return {
        e164, e164[1:], national, f"{area}-{exchange}-{line}", f"({area}) {exchange}-{line}",
        f"{area} {exchange} {line}", f"{area}.{exchange}.{line}", f"{exchange}-{line}",
        f"{exchange}{line}", e164[:-4], national[:-4], national[:-2],
    }


def test_a_campaign_call_logs_no_name_number_or_words(
        daemon_factory: Any, fresh_database_url: str, test_models_dir: Path,
        tmp_path: Path) -> None:
    hello = speech("ps_librivox_sense_and_sensibility_0880.wav")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with TwilioStandIn(ACCOUNT, TOKEN) as standin:
        d = daemon_factory(env={"REAUTOD_SECRET_TWILIO_AUTH_TOKEN": TOKEN})
        d.config_path.write_text(standin_config(d.workdir / "state", fresh_database_url, port,
                                                test_models_dir, standin, ACCOUNT))
        d.start()
        d.wait_ready(timeout=240)
        ctl = json_ctl(d)

        leads = tmp_path / "leads.csv"
        leads.write_text(f"name,phone,timezone\n{NAME},{NUMBER},{zone_where(range(10, 18))}\n")
        ctl("campaign", "create", "privacy", "--hours", "00:00-23:59", "--days", "mon-sun")
        assert ctl("campaign", "import", "privacy", str(leads))["summary"]["imported"] == 1
        assert ctl("campaign", "start", "privacy")["status"] == "active"

        create = wait_until("calls.create", lambda: next(iter(standin.requests_to("/Calls.json")),
                                                         None))
        assert create.form["To"] == [NUMBER]
        ws_url, params = stream_of(create.form["Twiml"][0])
        assert params["lead_name"] == NAME  # the call does carry the person to the pipeline
        sid = next(iter(standin.calls))
        for status in ("initiated", "ringing", "in-progress"):
            assert standin.send_status(base, sid, status).status_code == 200
        signature = RequestValidator(TOKEN).compute_signature(ws_url, {})
        result = asyncio.run(run_call(
            CallOptions(url=ws_url, headers={"X-Twilio-Signature": signature},
                        custom_parameters=params, call_sid=sid, record_audio=False),
            [WaitForAgent(timeout_s=90), hello, WaitForAgent(timeout_s=90), Hangup()],
        ))
        assert result.agent_bytes_received > 0
        wait_until("the REST hang-up", lambda: next(
            (r for r in standin.requests_to(f"/Calls/{sid}.json")
             if r.form.get("Status") == ["completed"]), None))
        assert standin.send_status(base, sid, "completed").status_code == 200

        async def turns(db: Database) -> list[str] | None:
            calls = CallRepository(db)
            row = await calls.by_sid(sid)
            if row is None or row.outcome is None:
                return None
            return [t.text for t in await calls.turns(row.id)]

        said = wait_until("the call's end in the database",
                          lambda: asyncio.run(in_db(fresh_database_url, turns)), timeout=90)
        d.stop()
    assert d.proc.returncode == 0, d.log()[-3000:]

    # the call happened and was said: the opening names the lead, the caller's turn is there
    assert said and NAME in said[0], said
    log = d.log()
    lines = log.splitlines()
    assert any(mask_phone(NUMBER) in line for line in lines), log[-3000:]  # logged, masked
    assert any(sid in line for line in lines)
    forbidden = {*written_forms(NUMBER), NAME, *NAME.split()}
    # every turn's text, and each of its longer phrases (a log line may quote part of it)
    for text in said:
        words = text.split()
        forbidden.update(" ".join(words[i:i + 4]) for i in range(max(1, len(words) - 3))
                         if len(" ".join(words[i:i + 4])) >= 12)
    leaks = [(p, line) for line in lines for p in forbidden if p and p in line]
    assert not leaks, leaks[:20]
