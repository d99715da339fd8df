"""Async repositories, one per aggregate; each returns frozen dataclasses, never ORM objects."""

from __future__ import annotations

from reautod.store.repositories.agent_transitions import (
    AgentDecisionRow,
    AgentTransitionRepository,
)
from reautod.store.repositories.appointments import (
    AppointmentRepository,
    AppointmentRow,
    SlotFullError,
)
from reautod.store.repositories.audit import AuditRepository, AuditRow
from reautod.store.repositories.budgets import (
    BudgetAlertRow,
    BudgetRepository,
    BudgetRow,
    SpendingStopRow,
)
from reautod.store.repositories.calls import (
    AgentTransitionRow,
    CallEventRow,
    CallRepository,
    CallRow,
    TurnRow,
)
from reautod.store.repositories.campaigns import CampaignRepository, CampaignRow
from reautod.store.repositories.contacts import ContactInput, ContactRepository, ContactRow
from reautod.store.repositories.costs import CostRepository, DailyCost
from reautod.store.repositories.dial_blocks import DialBlockRepository, DialBlockRow
from reautod.store.repositories.dnc import DncEntryRow, DncRepository
from reautod.store.repositories.experiments import ExperimentRepository, VariantCounts
from reautod.store.repositories.lead_scores import LeadScoreRepository, LeadScoreRow
from reautod.store.repositories.leads import LeadRepository, LeadRow
from reautod.store.repositories.outbox import (
    DeadLetter,
    NewMessage,
    OutboxCounts,
    OutboxMessage,
    OutboxRepository,
)
from reautod.store.repositories.recordings import RecordingRepository, RecordingRow

__all__ = [
    "AgentDecisionRow",
    "AgentTransitionRepository",
    "AgentTransitionRow",
    "AppointmentRepository",
    "AppointmentRow",
    "AuditRepository",
    "AuditRow",
    "BudgetAlertRow",
    "BudgetRepository",
    "BudgetRow",
    "CallEventRow",
    "CallRepository",
    "CallRow",
    "CampaignRepository",
    "CampaignRow",
    "ContactInput",
    "ContactRepository",
    "ContactRow",
    "CostRepository",
    "DailyCost",
    "DeadLetter",
    "DialBlockRepository",
    "DialBlockRow",
    "DncEntryRow",
    "DncRepository",
    "ExperimentRepository",
    "LeadRepository",
    "LeadRow",
    "LeadScoreRepository",
    "LeadScoreRow",
    "NewMessage",
    "OutboxCounts",
    "OutboxMessage",
    "OutboxRepository",
    "RecordingRepository",
    "RecordingRow",
    "SlotFullError",
    "SpendingStopRow",
    "TurnRow",
    "VariantCounts",
]
