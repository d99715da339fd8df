"""`reautoctl seed demo`: the sample data is valid, fits the example playbook, and seeding through
a real daemon is idempotent (the second run changes nothing and says so)."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from reautod.campaigns.intake import ImportResult
from reautod.campaigns.leads_import import import_csv
from reautod.campaigns.results import CampaignList
from reautod.campaigns.seed import (
    DEMO_BUSINESS,
    DEMO_CAMPAIGN,
    DEMO_LEADS,
    DEMO_PLAYBOOK,
    SeedError,
    demo_leads_csv,
    existing_demo_campaign,
    seed_result,
)
from reautod.dialogue.playbook_file import load_playbook_file

EXAMPLE = Path(__file__).resolve().parents[2] / "reautod" / "dialogue" / "examples" / (
    f"{DEMO_PLAYBOOK}.yaml")
FICTIONAL = re.compile(r"^\+1\d{3}5550(1\d\d)$")  # NANP 555-0100..0199


def test_the_sample_leads_import_cleanly_and_dialable() -> None:
    report = import_csv(demo_leads_csv().encode())
    assert report.issues == []
    assert len(report.rows) == len(DEMO_LEADS) == len({lead.phone for lead in DEMO_LEADS})
    for row, lead in zip(report.rows, DEMO_LEADS, strict=True):
        assert row.phone == lead.phone and FICTIONAL.match(row.phone), row.phone
        assert row.dialable and row.timezone == lead.timezone and row.state == lead.state
        assert row.attributes == {"street": lead.street, "city": lead.city}


def test_the_example_playbook_is_the_one_the_constant_names_and_the_leads_fit_it() -> None:
    loaded = load_playbook_file(EXAMPLE)
    assert loaded.name == DEMO_PLAYBOOK
    assert loaded.playbook.agent.business == DEMO_BUSINESS
    header = demo_leads_csv().splitlines()[0].split(",")
    assert set(loaded.playbook.lead_fields) <= set(header)


def _reply(*issues: dict[str, Any], new_leads: int) -> ImportResult:
    return ImportResult.model_validate({"campaign": DEMO_CAMPAIGN,
                                        "summary": {"new_leads": new_leads},
                                        "issues": list(issues), "issues_truncated": False})


def test_a_refused_sample_lead_is_a_defect_not_a_quiet_partial_seed() -> None:
    bad = {"line": 3, "problem": "bad_phone", "reason": "not a number", "imported": False}
    with pytest.raises(SeedError, match="line 3: bad_phone") as info:
        seed_result(created=True, status="draft",
                    import_reply=_reply(bad, new_leads=len(DEMO_LEADS) - 1))
    assert info.value.code == "seed_invalid"
    with pytest.raises(SeedError, match="2 demo leads added"):
        seed_result(created=True, status="draft", import_reply=_reply(new_leads=2))


@pytest.mark.slow
def test_seed_demo_through_the_daemon_is_idempotent(daemon_factory: Any) -> None:
    d = daemon_factory()
    state = d.workdir / "state"
    d.config_path.write_text(f'state_dir = "{state}"\nshutdown_grace_s = 5\n'
                             "[http]\nport = 0\n[metrics]\nport = 0\n")
    d.start()
    d.wait_ready(timeout=120)

    first = d.ctl("seed", "demo")
    assert first.returncode == 0, first.stderr
    assert f"demo campaign {DEMO_CAMPAIGN!r}: created (draft); {len(DEMO_LEADS)} sample leads " \
           "added, 0 already there" in first.stdout

    second = d.ctl("--json", "seed", "demo")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == {
        "campaign": DEMO_CAMPAIGN, "status": "draft", "campaign_created": False,
        "leads_added": 0, "leads_already_there": len(DEMO_LEADS), "changed": False}
    again = d.ctl("seed", "demo")
    assert "already there: nothing changed" in again.stdout, again.stdout + again.stderr

    listing = json.loads(d.ctl("--json", "campaign", "list").stdout)
    assert [c["name"] for c in listing["campaigns"]] == [DEMO_CAMPAIGN]
    assert sum(listing["campaigns"][0]["leads"].values()) == len(DEMO_LEADS)
    assert listing["campaigns"][0]["settings"]["business_name"] == DEMO_BUSINESS
    # the demo campaign runs the worked example, which the daemon seeded into its playbooks
    assert listing["campaigns"][0]["settings"]["playbook"] == DEMO_PLAYBOOK
    shown = d.ctl("--json", "playbook", "show", DEMO_PLAYBOOK)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["summary"]["name"] == DEMO_PLAYBOOK
    with sqlite3.connect(state / "reautod.db") as db:
        custom = {json.loads(c)["city"] for (c,) in db.execute("SELECT custom FROM contacts")}
    assert custom == {lead.city for lead in DEMO_LEADS}

    # The daemon's real campaigns.list reply, with the campaign changed under the demo's name:
    # someone else's campaign, which the seed refuses to touch.
    assert existing_demo_campaign(CampaignList.model_validate(listing)) is not None
    listing["campaigns"][0]["settings"]["max_concurrent"] = 7
    with pytest.raises(SeedError, match="exists with other settings") as info:
        existing_demo_campaign(CampaignList.model_validate(listing))
    assert info.value.code == "exists"
