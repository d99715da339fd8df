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

`call_agent` is the one place a call's agent (and so its greeting) is made from the stream's
parameters: the session speaks with it, and the CallManager prepares a dialed call's greeting
with it before the call connects, so the two texts are the same by construction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

from reautod.config import AgentSettings
from reautod.pipeline.agent import DialogueAgent, render

DEFAULT_OPT_OUT_KEY = "9"
OPT_OUT_OFFER = "To stop these calls, say stop or press {key}."
CALLBACK_OFFER = "To ask us not to call you again, you can also call {number}."
_KEY_NAMES = {"*": "star", "#": "pound"}


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


def render_opening(template: str, fields: OpeningFields) -> str:
    """`template` with every field but `{lead_name}` filled, on one line."""
    key = fields.opt_out_key
    number = spoken_number(fields.callback_number) if fields.callback_number else ""
    values = {
        "business_name": fields.business_name,
        "agent_name": fields.agent_name,
        "opt_out_key": _KEY_NAMES.get(key, key) if key else "",
        "opt_out": OPT_OUT_OFFER.format(key=_KEY_NAMES.get(key, key)) if key else "",
        "callback_number": number,
        "callback": CALLBACK_OFFER.format(number=number) if number else "",
    }
    # Doubled braces survive this pass as single ones, so the pipeline's second pass (which fills
    # {lead_name}) reads an operator's "{" inside a business name as text, not as a field.
    escaped = {k: v.replace("{", "{{").replace("}", "}}") for k, v in values.items()}
    return " ".join(render(template, **escaped).split())


def call_agent(settings: AgentSettings, *, lead_name: str, goal: str | None,
               opening: str | None) -> DialogueAgent:
    """The agent of one call from its stream parameters (no `opening`: the config's greeting,
    rendered with the config's own fields)."""
    if not opening:
        opening = render_opening(settings.greeting, OpeningFields.from_agent(settings))
    return DialogueAgent.for_call(settings, lead_name=lead_name, goal=goal, opening=opening)
