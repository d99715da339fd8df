"""Twilio's reported price of a call (REST Call resource `price`, `price_unit`), off the loop.

Takes a configured `twilio.rest.Client` (the telephony part builds it, with its base URL and
timeouts), so there is one place that knows how to reach Twilio.
"""

from __future__ import annotations

import asyncio

from requests.exceptions import RequestException
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from reautod.cost.reconcile import ReportedPrice, parse_twilio_price
from reautod.errors import NotFoundError, ReautodError, UnavailableError, ValidationError


class TwilioCallPrices:
    """`CallPriceSource` over Twilio's REST API."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def call_price(self, call_sid: str) -> ReportedPrice:
        def fetch() -> ReportedPrice:
            call = self._client.calls(call_sid).fetch()
            return ReportedPrice(call_sid=call_sid, price_micros=parse_twilio_price(call.price),
                                 price_unit=str(call.price_unit or "USD"),
                                 status=str(call.status or ""))

        try:
            return await asyncio.to_thread(fetch)
        except TwilioRestException as err:
            if err.status == 404:
                raise NotFoundError(f"Twilio has no call {call_sid}") from err
            raise ReautodError(f"Twilio refused the price of {call_sid}: HTTP {err.status}, "
                               f"code {err.code}", code="twilio_failed") from err
        except ValidationError as err:
            raise ReautodError(f"Twilio sent an unreadable price for {call_sid}: {err.message}",
                               code="twilio_failed") from err
        except (RequestException, TwilioException) as err:
            raise UnavailableError(f"cannot reach Twilio for the price of {call_sid}: {err}") from err
