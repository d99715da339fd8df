"""Typed results of the recovery control method (`call.recover`), shared by daemon and CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RecoverParams(BaseModel):
    """No field: list the recoverable calls; `resume` or `close`: act on one (a CallSid or our
    call id)."""

    model_config = ConfigDict(extra="forbid")

    resume: str | None = Field(None, min_length=1, max_length=128)
    close: str | None = Field(None, min_length=1, max_length=128)


class RecoverableCall(BaseModel):
    """A call with a checkpoint that is not live in this daemon."""

    call_id: str
    call_sid: str | None
    lead_name: str
    campaign: str | None
    direction: Literal["outbound", "inbound"]
    turns: int
    stage: str | None  # the playbook stage it was in (None: no playbook)
    started_at: datetime
    updated_at: datetime
    lost_at: datetime | None  # None: left by a run that died (its window counts from start-up)
    resumable_until: datetime | None
    resumable: bool
    resumes: int


class RecoverAction(BaseModel):
    """`call.recover` with `resume` or `close`: what was done."""

    call_id: str
    call_sid: str | None
    action: Literal["resumed", "closed"]
    detail: str = ""


class RecoverableCalls(BaseModel):
    """`call.recover`: the calls a crash left (after `resume` or `close`, what was done first)."""

    calls: list[RecoverableCall]
    resume_window_s: float
    done: RecoverAction | None = None
