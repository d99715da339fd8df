"""The words of one call: the playbook's templates filled with this lead's (escaped) values.

Approved lines (library answers and compliance lines) use no lead data, so they are the same on
every call of a playbook version: `approved_lines` lists them for the response cache and each
carries its cache key.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from reautod.dialogue.playbook import Playbook
from reautod.dialogue.replies import Line
from reautod.dialogue.scheduling import Slot
from reautod.dialogue.templates import LeadData, clean_value, render
from reautod.dialogue.timeparse import spoken
from reautod.engines.base import ChatMessage

COMPLIANCE_KEYS = ("disclosure", "opt_out", "goodbye", "fallback", "transfer", "no_transfer")


def agent_fields(playbook: Playbook) -> dict[str, str]:
    return {"agent.name": clean_value(playbook.agent.name, 60),
            "agent.business": clean_value(playbook.agent.business, 120)}


def approved_lines(playbook: Playbook) -> dict[str, str]:
    """Cache key -> text of every approved line of `playbook`."""
    fields = agent_fields(playbook)
    lines = {f"library:{e.id}": render(e.answer, fields) for e in playbook.library}
    for key in COMPLIANCE_KEYS:
        lines[f"compliance:{key}"] = render(getattr(playbook.compliance, key), fields)
    return lines


class CallLines:
    """Renders a playbook's lines for one lead (timezone: the lead's, for spoken times)."""

    def __init__(self, playbook: Playbook, lead: LeadData, timezone: str) -> None:
        self.playbook = playbook
        self.zone = ZoneInfo(timezone)
        self.fields = {**lead.fields(), **agent_fields(playbook)}
        self._approved = approved_lines(playbook)

    def line(self, template: str, **extra: str) -> Line:
        return Line(render(template, {**self.fields, **extra}))

    def commitment(self, template: str, **extra: str) -> Line:
        """A line the caller must hear whole (see `Line.commitment`)."""
        return Line(render(template, {**self.fields, **extra}), commitment=True)

    def approved(self, key: str) -> Line:
        """A library answer ("library:<id>") or a compliance line ("compliance:<name>")."""
        return Line(self._approved[key], key)

    def when(self, at: datetime) -> str:
        return spoken(at.astimezone(self.zone))

    def slots(self, slots: list[Slot] | tuple[Slot, ...]) -> str:
        """"Tuesday, December 15 at 10 AM or 2 PM" (the date said once per day)."""
        parts: list[str] = []
        last_day = None
        for slot in slots:
            local = slot.start.astimezone(self.zone)
            parts.append(spoken(local, with_date=local.date() != last_day))
            last_day = local.date()
        return " or ".join(parts) if len(parts) <= 2 else ", ".join(parts[:-1]) + ", or " + parts[-1]

    def system_prompt(self, stage: str, question: str | None) -> ChatMessage:
        st = self.playbook.stages[stage]
        parts = [render(self.playbook.system_prompt, self.fields),
                 f"This part of the call: {st.goal}"]
        if st.prompt:
            parts.append(render(st.prompt, self.fields))
        if question:
            # The question itself is said after the model's words (composer: the model never
            # words it); naming it keeps the model from asking something else.
            parts.append("Acknowledge what they said in a few words. Do not ask a question: "
                         f"right after you, the caller hears: {question}")
            parts.append("Reply with one short spoken sentence.")
        else:
            parts.append("Reply with one or two short spoken sentences.")
        return ChatMessage("system", "\n".join(parts))
