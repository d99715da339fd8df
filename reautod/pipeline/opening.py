"""The call opening: who is calling, how to opt out at once, and a number for do-not-call requests.

47 CFR 64.1200(b) asks an artificial-voice telemarketing call to name the business at its start,
to offer an automated opt-out (voice and/or key) within 2 seconds after that, and to give a
number that takes do-not-call requests. The opening is one template (config `agent.greeting`,
or a campaign's `opening`) whose fields are filled here:

- `{business_name}`, `{agent_name}`: who calls;
- `{opt_out}`: the offer sentence ("To stop these calls, say stop or press 9."), empty when the
  campaign turns the offer off; `{opt_out_key}` is the bare key;
- `{callback}`: the sentence giving the number, empty without one; `{callback_number}` is the
  bare number, spelled digit by digit for the voice.

`{lead_name}` is left in place: the pipeline fills it from the call's own `lead_name`, so the
dialer can render a campaign's opening once and its length does not depend on the lead.

A playbook call opens with its start stage's own words instead: `offers` gives it the same
opt-out and callback sentences, said right after the sentence that names the business.

`render` fills any template of ours (the opening, the system prompt, the scripted lines) and
never fails on an operator's typo.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

import phonenumbers

from reautod.config import AgentSettings

DEFAULT_OPT_OUT_KEY = "9"
OPT_OUT_OFFER = "To stop these calls, say stop or press {key}."
CALLBACK_OFFER = "To ask us not to call you again, you can also call {number}."
_KEY_NAMES = {"*": "star", "#": "pound"}


class _SafeFormatter(string.Formatter):
    """Fills known fields; leaves unknown `{x}` as written so a template typo never crashes a call."""

    def get_value(self, key: int | str, args: object, kwargs: dict[str, str]) -> str:  # type: ignore[override]
        if isinstance(key, str) and key in kwargs:
            return kwargs[key]
        return "{" + str(key) + "}"


def render(template: str, **fields: str) -> str:
    """`template` with `fields` filled; unknown fields and unbalanced braces are left as written."""
    try:
        return _SafeFormatter().vformat(template, (), fields)
    except (ValueError, IndexError):  # unbalanced braces in an operator-written template
        return template


@dataclass(frozen=True)
class OpeningFields:
    """What an opening names; `opt_out_key` None means no opt-out offer."""

    business_name: str
    agent_name: str
    opt_out_key: str | None
    callback_number: str | None

    @classmethod
    def from_agent(cls, agent: AgentSettings) -> OpeningFields:
        """The config's own values: calls without a campaign (simulated calls among them)."""
        return cls(agent.business_name, agent.agent_name, DEFAULT_OPT_OUT_KEY,
                   agent.callback_number)


def spoken_number(number: str) -> str:
    """A phone number as the voice should read it: "+12125550199" -> "2 1 2, 5 5 5, 0 1 9 9"."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    groups = re.findall(r"\d+", national)
    return ", ".join(" ".join(group) for group in groups) if groups else number


def _values(fields: OpeningFields) -> dict[str, str]:
    key = fields.opt_out_key
    number = spoken_number(fields.callback_number) if fields.callback_number else ""
    return {
        "business_name": fields.business_name,
        "agent_name": fields.agent_name,
        "opt_out_key": _KEY_NAMES.get(key, key) if key else "",
        "opt_out": OPT_OUT_OFFER.format(key=_KEY_NAMES.get(key, key)) if key else "",
        "callback_number": number,
        "callback": CALLBACK_OFFER.format(number=number) if number else "",
    }


def offers(fields: OpeningFields) -> tuple[str, ...]:
    """What is said right after the identification: the opt-out offer, then the number for
    do-not-call requests, each when it applies (a playbook's opening says them as they are)."""
    values = _values(fields)
    return tuple(text for text in (values["opt_out"], values["callback"]) if text)


def render_opening(template: str, fields: OpeningFields) -> str:
    """`template` with every field but `{lead_name}` filled, on one line."""
    # Doubled braces survive this pass as single ones, so the pipeline's second pass (which fills
    # {lead_name}) reads an operator's "{" inside a business name as text, not as a field.
    escaped = {k: v.replace("{", "{{").replace("}", "}}") for k, v in _values(fields).items()}
    return " ".join(render(template, **escaped).split())
