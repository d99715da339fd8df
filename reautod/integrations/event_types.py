"""The webhook event types, a leaf: the settings (`[integrations]`, mounted in `reautod.config`)
name them, and the config must not import the event models (they import the cost part, which
imports the store, which imports the config)."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    CALL_COMPLETED = "call.completed"
    LEAD_QUALIFIED = "lead.qualified"
    LEAD_SCORED = "lead.scored"
    APPOINTMENT_BOOKED = "appointment.booked"
    APPOINTMENT_RESCHEDULED = "appointment.rescheduled"
    APPOINTMENT_CANCELLED = "appointment.cancelled"
    LEAD_OPTED_OUT = "lead.opted_out"
    BUDGET_ALERT = "budget.alert"
