"""Booking confirmations, sent through the outbox: an SMS to the lead (Twilio Messages) and an
email to the rep with the event as an ICS attachment (SMTP).

The text of each message is written when the booking is made and stored in the outbox row, so a
retry sends exactly what was first meant. Each sender is a `Deliverer` that says whether a
failure is worth a retry: Twilio 429/5xx and SMTP 4xx or lost connections are; a Twilio 4xx (a
number that cannot take texts) and an SMTP 5xx (an address refused) are not.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from reautod.integrations.delivery import Outcome
from reautod.integrations.settings import SmtpSettings
from reautod.integrations.webhooks import classify
from reautod.store.repositories import OutboxMessage

TWILIO_API = "https://api.twilio.com"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    appointment_id: str
    booking_ref: str
    to: str
    starts_at: datetime  # the slot it is about
    confirms: bool  # True: delivering it (with the others) confirms the booking


class SmsConfirmation(_Message):
    kind: Literal["sms"] = "sms"
    body: str


class EmailConfirmation(_Message):
    kind: Literal["email"] = "email"
    subject: str
    text: str
    ics: str
    ics_method: Literal["PUBLISH", "CANCEL"] = "PUBLISH"


class TwilioSms:
    """Sends SMS through Twilio's Messages API (`POST .../Messages.json`)."""

    def __init__(self, account_sid: str, auth_token: str, from_number: str, *,
                 api_base_url: str | None = None, timeout_s: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        base = (api_base_url or TWILIO_API).rstrip("/")
        self.url = f"{base}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.from_number = from_number
        self.client = httpx.AsyncClient(auth=(account_sid, auth_token), timeout=timeout_s,
                                        transport=transport)

    async def deliver(self, message: OutboxMessage) -> Outcome:
        try:
            sms = SmsConfirmation.model_validate(message.payload)
        except PydanticValidationError as err:
            return Outcome.failed_for_good(f"not an SMS confirmation: {err}")
        try:
            response = await self.client.post(
                self.url, data={"To": sms.to, "From": self.from_number, "Body": sms.body})
        except httpx.TransportError as err:
            return Outcome.transient(f"{type(err).__name__}: {err or 'no detail'}")
        outcome = classify(response)
        if not outcome.ok and response.headers.get("content-type", "").startswith("application/json"):
            detail = response.json()
            return Outcome(False, f"{outcome.error}: Twilio {detail.get('code')} "
                                  f"{detail.get('message')}", outcome.permanent,
                           outcome.retry_after_s)
        return outcome

    async def aclose(self) -> None:
        await self.client.aclose()


class SmtpEmail:
    """Sends email through an SMTP server (smtplib in a thread: nothing blocks the loop)."""

    def __init__(self, settings: SmtpSettings, password: str | None) -> None:
        self.settings = settings
        self.password = password

    def compose(self, email: EmailConfirmation) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.settings.from_address
        msg["To"] = email.to
        msg["Subject"] = email.subject
        msg["Message-ID"] = make_msgid(domain=self.settings.from_address.split("@")[-1])
        msg.set_content(email.text)
        msg.add_attachment(email.ics.encode(), maintype="text", subtype="calendar",
                           filename="invite.ics", params={"method": email.ics_method})
        return msg

    def _send(self, msg: EmailMessage) -> None:
        s = self.settings
        with smtplib.SMTP(s.host, s.port, timeout=s.timeout_s) as smtp:
            if s.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if s.username and self.password:
                smtp.login(s.username, self.password)
            smtp.send_message(msg)

    async def deliver(self, message: OutboxMessage) -> Outcome:
        try:
            email = EmailConfirmation.model_validate(message.payload)
        except PydanticValidationError as err:
            return Outcome.failed_for_good(f"not an email confirmation: {err}")
        try:
            await asyncio.to_thread(self._send, self.compose(email))
        except smtplib.SMTPRecipientsRefused as err:
            codes = [code for code, _ in err.recipients.values()]
            reason = f"recipient refused: {codes}"
            return (Outcome.transient(reason) if all(400 <= c < 500 for c in codes)
                    else Outcome.failed_for_good(reason))
        except smtplib.SMTPResponseException as err:
            text = err.smtp_error
            detail = text.decode(errors="replace") if isinstance(text, bytes) else text
            reason = f"SMTP {err.smtp_code}: {detail}"
            return (Outcome.transient(reason) if 400 <= err.smtp_code < 500
                    else Outcome.failed_for_good(reason))
        except (smtplib.SMTPException, OSError) as err:
            return Outcome.transient(f"{type(err).__name__}: {err}")
        return Outcome.delivered()

    async def aclose(self) -> None:
        return None
