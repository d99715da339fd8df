"""End to end through a real daemon (subprocess) and reautoctl: a simulated call of a campaign
(`call simulate --campaign spring`) is metered into that campaign's report (`reautoctl stats
--campaign spring`, cost per call by voice tier), and the site budget it overruns reaches the
finance team's webhook receiver as a `budget.alert` event through the outbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reautod.cost.pricebook import DEFAULT_PRICE_BOOK
from reautod.integrations.events import EVENTS, BudgetAlertEvent
from tests.dialogue.test_daemon_agent import ctl_json
from tests.fixtures.daemon import wait_until
from tests.integrations.standins import WebhookReceiver
from tests.integrations.test_daemon_results import wait_for

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


def test_a_campaign_report_has_cost_per_call_by_tier_and_alerts_reach_the_webhook(
        daemon_factory: Any, test_models_dir: Path, receiver: WebhookReceiver,
        tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "finance_secret").write_text("whsec-finance\n")
    # the shipped book with a dear box, so that the test models' few compute milliseconds
    # cost whole micro-dollars on every ledger row
    book = tmp_path / "prices.toml"
    book.write_text(DEFAULT_PRICE_BOOK.read_text().replace('amount = "0.30"', 'amount = "3600"')
                    .replace('amount = "0.45"', 'amount = "3600"')
                    .replace('amount = "0.15"', 'amount = "3600"'))
    d = daemon_factory(env={"CREDENTIALS_DIRECTORY": str(credentials)})
    d.config_path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        "shutdown_grace_s = 5\n"
        "[http]\nport = 0\n[metrics]\nport = 0\n"
        f'[models]\ndir = "{test_models_dir}"\nprofile = "test"\ndevice = "cpu"\n'
        f'[cost]\nprice_book = "{book}"\n'
        "[integrations.delivery]\npoll_interval_s = 0.2\n"
        "[[integrations.webhooks]]\n"
        f'name = "finance"\nurl = "{receiver.base_url}/budget"\n'
        'secret_credential = "finance_secret"\nevents = ["budget.alert"]\n'
    )
    d.start()
    d.wait_ready(timeout=240)

    def ctl(*args: str) -> Any:
        return ctl_json(d, *args, timeout=300)

    ctl("campaign", "create", "spring")
    ctl("budget", "set", "day", "0.000001")  # any call's cost crosses every threshold
    call_id = ctl("call", "simulate", "--fast", "--campaign", "spring", "--say",
                  "Yes, tell me more.")["call_id"]

    # The alert, queued in the outbox and delivered to the endpoint that wants budget alerts.
    try:
        got = wait_for(receiver, "budget.alert")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{d.log()[-6000:]}") from err
    assert got.path == "/budget"
    event = EVENTS.validate_json(got.body)
    assert isinstance(event, BudgetAlertEvent)
    assert (event.data.kind, event.data.scope, event.data.period) == ("threshold", "site", "day")
    assert event.data.spent_usd >= event.data.limit_usd * event.data.threshold_pct / 100

    # The campaign's report: the call counted in spring, its cost per call on the local tier.
    def report() -> dict[str, Any] | None:
        stats = ctl("stats", "--campaign", "spring")
        return stats if stats["cost_by_tier"] and stats["cost"]["total_micros"] > 0 else None

    stats = wait_until("spring's cost report", report)
    [local] = stats["cost_by_tier"]
    assert (local["tier"], local["calls"]) == ("local", 1), stats
    assert local["per_call_micros"] == local["total_micros"] > 0
    assert stats["cost"]["per_call_micros"] == local["per_call_micros"]
    assert ctl("call", "show", call_id)["cost"]["total_micros"] == local["total_micros"]
    text = d.ctl("stats", "--campaign", "spring")
    assert text.returncode == 0 and "VOICE" in text.stdout and "local" in text.stdout, text.stdout
    # a campaign the call did not belong to has no cost
    ctl("campaign", "create", "autumn")
    assert ctl("stats", "--campaign", "autumn")["cost_by_tier"] == []

    d.stop()
    assert d.proc.returncode == 0, d.log()[-3000:]
