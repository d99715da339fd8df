"""Small builders shared by the integration tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from reautod.integrations.events import CampaignRef, LeadRef, LeadScored, LeadScoredEvent
from reautod.store.database import Database
from reautod.store.repositories import ContactInput, ContactRepository

DOCS = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"


def docs_snippet(function: str) -> dict[str, Any]:
    """Run the python block of docs/integrations.md that defines `function`; its namespace."""
    for block in re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S):
        if f"def {function}(" in block:
            namespace: dict[str, Any] = {}
            exec(compile(block, str(DOCS), "exec"), namespace)
            return namespace
    raise AssertionError(f"docs/integrations.md has no python block defining {function}")


def scored(contact_id: str, score: int, campaign: str = "spring") -> LeadScoredEvent:
    return LeadScoredEvent(
        campaign=CampaignRef(id="c-1", name=campaign),
        lead=LeadRef(contact_id=contact_id, phone="+15550001111", name="Pat Doe"),
        data=LeadScored(score=score),
    )


async def contact(db: Database, phone: str | None = None) -> str:
    """A contact row (outbox messages reference one); returns its id."""
    import random

    number = phone or f"+1555{random.randrange(10**7):07d}"
    return str((await ContactRepository(db).upsert(ContactInput(number, name="Pat Doe"))).id)
