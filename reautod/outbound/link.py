"""A configured Twilio, as the parts of outbound that talk to it receive it."""

from __future__ import annotations

from dataclasses import dataclass

from reautod.telephony.signatures import TwilioSignatureValidator
from reautod.telephony.twilio_client import TwilioCalls


@dataclass(frozen=True)
class TwilioLink:
    """The REST client, the signature validator (it also builds our public URLs), the caller ID."""

    client: TwilioCalls
    validator: TwilioSignatureValidator
    from_number: str
