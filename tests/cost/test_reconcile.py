"""Twilio's reported call price against the ledger, through twilio-python and a local stand-in
of the Call resource (GET /2010-04-01/Accounts/{AC}/Calls/{CA}.json)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from twilio.rest import Client

from reautod.cost.ledger import CostLedger
from reautod.cost.meters import CallMeter
from reautod.cost.pricebook import load_price_books
from reautod.cost.reconcile import Outcome, ReconcileQueue, Reconciler, parse_twilio_price
from reautod.cost.twilio_prices import TwilioCallPrices
from reautod.errors import NotFoundError, UnavailableError
from reautod.observability.metrics import Metrics
from reautod.store.apply import apply_records
from reautod.store.database import Database
from reautod.store.records import Record
from reautod.store.repositories.costs import CostRepository
from tests.store.factories import call_started, campaign_contact_lead

ACCOUNT = "AC" + "0" * 32
T0 = datetime(2026, 11, 21, 15, tzinfo=UTC)


class CallPrices:
    """Twilio's Call resource on 127.0.0.1: `prices[sid]` is the `price` string (None: not yet)."""

    def __init__(self) -> None:
        self.prices: dict[str, tuple[str | None, str]] = {}
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                outer.fetches += 1
                sid = self.path.rsplit("/", 1)[-1].removesuffix(".json")
                if sid not in outer.prices:
                    code, body = 404, {"code": 20404, "message": "not found", "status": 404}
                else:
                    price, unit = outer.prices[sid]
                    code, body = 200, {"sid": sid, "account_sid": ACCOUNT, "status": "completed",
                                       "duration": "61", "price": price, "price_unit": unit,
                                       "direction": "outbound-api", "api_version": "2010-04-01"}
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def twilio() -> Iterator[CallPrices]:
    server = CallPrices()
    try:
        yield server
    finally:
        server.close()


def source(url: str) -> TwilioCallPrices:
    client = Client(ACCOUNT, "token")
    client.api.base_url = url
    return TwilioCallPrices(client)


class Sink:
    def __init__(self) -> None:
        self.records: list[Record] = []

    def submit(self, record: Record) -> bool:
        self.records.append(record)
        return True


async def metered_call(db: Database, seconds: float) -> tuple[uuid.UUID, uuid.UUID]:
    campaign, contact, lead = await campaign_contact_lead(db)
    start = call_started(campaign, contact, lead, at=T0, call_sid="CA1")
    meter = CallMeter(load_price_books().at(T0), start.call_id, campaign.id)
    meter.telephony_final(seconds)  # voice + media stream; Twilio's price covers voice only

    async def work(conn: Any) -> None:
        await apply_records(conn, [start, *meter.flush(T0)])

    await db.transaction(work)
    return start.call_id, campaign.id


def test_twilio_prices_are_negative_decimal_strings() -> None:
    assert parse_twilio_price("-0.02800") == 28_000
    assert parse_twilio_price("0.0105") == 10_500
    assert parse_twilio_price(None) is None and parse_twilio_price("") is None


async def test_reconcile_stores_the_difference_and_tops_up_an_undercount(
        db: Database, twilio: CallPrices) -> None:
    call_id, campaign_id = await metered_call(db, 61)  # we metered 2 min = $0.028
    twilio.prices["CA1"] = ("-0.04200", "USD")  # Twilio billed 3 min
    sink, metrics = Sink(), Metrics()
    ledger = CostLedger(sink)
    costs = CostRepository(db)
    reconciler = Reconciler(source(twilio.url), costs, ledger=ledger, metrics=metrics,
                            clock=lambda: T0)
    assert await reconciler.reconcile(call_id, "CA1", campaign_id) is Outcome.RECONCILED
    assert await reconciler.reconcile(call_id, "CA1", campaign_id) is Outcome.ALREADY
    error = await costs.ledger_error(T0)
    assert (error.calls, error.metered_micros, error.reported_micros,
            error.absolute_error_micros) == (1, 28_000, 42_000, 14_000)
    (adjustment,) = sink.records
    assert adjustment.amount_micros == 14_000 and adjustment.tier == "reconciliation"  # type: ignore[union-attr]
    assert metrics.cost_ledger_error_dollars_total._value.get() == pytest.approx(0.014)
    assert metrics.cost_reconciled_dollars_total._value.get() == pytest.approx(0.042)


async def test_an_overcount_is_kept_and_no_adjustment_is_written(
        db: Database, twilio: CallPrices) -> None:
    call_id, campaign_id = await metered_call(db, 61)
    twilio.prices["CA1"] = ("-0.01400", "USD")
    sink = Sink()
    reconciler = Reconciler(source(twilio.url), CostRepository(db), ledger=CostLedger(sink))
    assert await reconciler.reconcile(call_id, "CA1", campaign_id) is Outcome.RECONCILED
    assert sink.records == []
    assert (await CostRepository(db).ledger_error(T0)).absolute_error_micros == 14_000


async def test_the_queue_asks_again_until_twilio_has_a_price(
        db: Database, twilio: CallPrices) -> None:
    call_id, campaign_id = await metered_call(db, 30)
    twilio.prices["CA1"] = (None, "USD")
    reconciler = Reconciler(source(twilio.url), CostRepository(db))
    assert await reconciler.reconcile(call_id, "CA1", campaign_id) is Outcome.PENDING
    queue = ReconcileQueue(reconciler, [0.0, 0.2, 0.2])
    task = queue.schedule(call_id, "CA1", campaign_id)
    twilio.prices["CA1"] = ("-0.01400", "USD")
    assert await task is Outcome.RECONCILED
    twilio.prices["CA2"] = ("-1.00", "EUR")
    assert await queue.schedule(None, "CA2", None) is Outcome.OTHER_CURRENCY  # type: ignore[comparison-overlap]
    await queue.stop()


async def test_twilio_errors_are_typed(twilio: CallPrices) -> None:
    with pytest.raises(NotFoundError):
        await source(twilio.url).call_price("CA404")
    with pytest.raises(UnavailableError):
        await source("http://127.0.0.1:1").call_price("CA1")
