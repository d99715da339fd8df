"""The qualifying agent of one call: a stage machine over the playbook, deciding by code.

Per caller turn (`respond`), in this order:
1. read the turn deterministically (extraction: intents, yes/no, library phrases, facts, a
   day/time in the lead's zone), off the event loop;
2. an opt-out ends the call at once (DNC, the compliance line, hang up);
3. a confirmation the agent asked for is settled (book / schedule on a yes);
4. "are you a robot?" gets the disclosure; a request for a person, a transfer (or a callback);
   a callback request or a time for one, a callback proposal; a time in a booking stage, a slot;
   a library phrase, its approved answer (an objection is counted);
5. facts are learned (the model, with constrained JSON, only for what phrases missed) and the
   lead re-scored;
6. the stage's exits are followed (a stage change keeps the whole history and every fact);
7. the reply is finished: the next question as written, or a model reply asking it.
Once the agent has said its last words (a reply that hangs up: an opt-out, a goodbye), a later
turn (the caller talking over them, or hanging up right after) gets a bare hang-up (a booking
confirmation they cut off said again first), never another answer.
Approved lines come with their cache key (and cached audio); only step 7 may need the model, so
a turn decided by phrases is answered without waiting for generation.

While the language model is down or slow (`model_down`: its circuit is open, see
reautod.resilience.llm) the call takes the playbook's scripted path instead of silence: the
greeting is scripted already; each turn after it asks for a callback time (the playbook's
callback lines), proposes the time the caller gives and schedules it on a yes, and after
SCRIPTED_ASKS turns with no time it ends politely (the goodbye). Opt-outs, confirmations and a
request for a person are handled as always.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

from reautod.config import AgentSettings
from reautod.dialogue.cache import ResponseCache
from reautod.dialogue.composer import ReplyComposer
from reautod.dialogue.extraction import Extractor, TurnFacts
from reautod.dialogue.journal import CallJournal
from reautod.dialogue.lines import CallLines
from reautod.dialogue.llm_extract import JsonModel, extract, model_facts
from reautod.dialogue.offers import with_offers
from reautod.dialogue.outcomes import outcome_for, scored_outcome
from reautod.dialogue.playbook import Exit, Variant
from reautod.dialogue.playbook_file import LoadedPlaybook
from reautod.dialogue.ports import (
    AgentCall,
    AgentObserver,
    CallbackWindow,
    CallEffects,
    LeadChanges,
    RecordSink,
)
from reautod.dialogue.replies import (
    After,
    AgentReply,
    AgentSnapshot,
    CallResult,
    EndCause,
    Line,
)
from reautod.dialogue.scheduling import Scheduler
from reautod.dialogue.scoring import Score, score
from reautod.dialogue.stages import MAX_CHAINED, Situation, describe, exit_for
from reautod.dialogue.state import CallState, PendingBooking, PendingCallback
from reautod.dialogue.tools import Booker, Callbacks, ToolKit
from reautod.dialogue.variants import apply_variant, assign_variant
from reautod.dialogue.vocabulary import Intent, Outcome, Tool
from reautod.errors import ReautodError
from reautod.pipeline.opening import OpeningFields, offers
from reautod.store.enums import DecisionStatus

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# Turns that say something other than an answer to the question: the model is not asked.
SCRIPTED_ASKS = 2  # scripted turns that ask for a callback time before the polite end
_NOT_ANSWERS = frozenset({Intent.OPT_OUT, Intent.ROBOT_QUESTION, Intent.FAQ, Intent.OBJECTION,
                          Intent.NOT_INTERESTED, Intent.WRONG_PERSON, Intent.CALLBACK_REQUEST,
                          Intent.HUMAN_REQUEST})


def _utcnow() -> datetime:
    return datetime.now(UTC)


class CallAgent:
    """One call's agent. Build it with `AgentFactory.start`; see the module docstring."""

    def __init__(self, *, call: AgentCall, loaded: LoadedPlaybook, variant: Variant,
                 extractor: Extractor, records: RecordSink, effects: CallEffects,
                 scheduler: Scheduler | None, window: CallbackWindow | None,
                 observer: AgentObserver | None, cache: ResponseCache | None,
                 json_model: JsonModel | None, clock: Clock, opening: OpeningFields,
                 model_down: Callable[[], bool] = lambda: False) -> None:
        self.call = call
        self._model_down = model_down
        self._scripted_turns = 0  # turns answered on the scripted path
        self.opening_fields = opening
        self.loaded = loaded
        self.variant = variant
        self.playbook = apply_variant(loaded.playbook, variant)
        self.state = CallState(stage=self.playbook.start)
        self.lines = CallLines(self.playbook, call.lead.data(), call.lead.timezone)
        self.journal = CallJournal(call.call_id, call.lead, records, observer, clock)
        self._extractor = extractor
        self._effects = effects
        self._json_model = json_model
        self._clock = clock
        self._score: Score = score(self.playbook.qualification, {})
        self._result: CallResult | None = None
        self._not_interested = False
        self._parted: str | None = None  # the reason of the hang-up the agent asked for
        self._opening: AgentReply | None = None
        kit = ToolKit(call, self.state, self.lines, self.journal, effects, clock)
        booking = self.playbook.booking
        self._booker = Booker(kit, scheduler, booking) if scheduler and booking else None
        self._callbacks = Callbacks(kit, window, self.playbook.callback)
        self._compose = ReplyComposer(self.playbook, loaded.version, self.lines, self.state,
                                      self._booker, cache)

    # -- the pipeline's side --------------------------------------------------------------------

    async def opening(self) -> AgentReply:
        """The first thing said (outbound and inbound alike): the start stage's entry; on a call
        we placed, with the opt-out offer and the number for DNC requests right after the
        identification (reautod.dialogue.offers). A caller who rang us is not offered a way to
        stop calls we did not make."""
        reply = await self.prepared_opening()
        pb = self.playbook
        self.journal.assigned(pb.playbook, self.loaded.version, self.variant.name)
        self.journal.transition(None, pb.start, "call started")
        return reply

    async def prepared_opening(self) -> AgentReply:
        """The reply `opening` gives, decided now (once) and recorded only when `opening` is
        called: a call's opening is decided, and its audio made, while its phone rings."""
        if self._opening is None:
            fields = self.opening_fields
            said = offers(fields) if self.call.direction == "outbound" else ()
            lines = with_offers(await self._compose.entry_lines(self.playbook.start), said,
                                (self.lines.fields["agent.business"], fields.business_name))
            self._opening = await self._compose.finish(lines, changed_stage=True)
        return self._opening

    async def respond(self, text: str) -> AgentReply:
        """The reply to one caller turn (final STT text); see the module docstring."""
        state = self.state
        state.turns += 1
        state.stage_turns += 1
        state.say("caller", text)
        if self._parted is not None:
            # The agent said its last words (an opt-out's above all): it only hangs up now,
            # after a commitment the caller cut off (a booking confirmed) is said again.
            return await self._compose.finish(state.take_unheard(), after=After.HANG_UP,
                                              reason=self._parted)
        reply = await self._respond(text)
        if reply.after is After.HANG_UP:
            self._parted = reply.reason
        return reply

    async def _respond(self, text: str) -> AgentReply:
        state = self.state
        turn = await asyncio.to_thread(self._extractor.analyze, text, timezone=self.call.lead.timezone,
                                       now=self._clock(), asked=state.asked)
        if turn.has(Intent.OPT_OUT):
            return await self._opt_out(turn)
        # A booking or callback the caller cut off while it was confirmed is said again first.
        lines: list[Line] = state.take_unheard()
        asked_back = False  # the agent asked something of its own (a confirmation, a time)
        skip_exits = False  # the turn was a question to the agent, not an answer
        stage = state.stage
        tools = self.playbook.stages[stage].tools
        if state.pending is not None:
            settled, asked_back = await self._settle(turn, stage)
            lines += settled
            if state.outcome is not None:  # a callback was scheduled: that ends the call
                return await self._compose.finish(lines, after=After.HANG_UP, reason=state.disposition)
        if not asked_back and self._model_down() and not turn.has(Intent.HUMAN_REQUEST):
            return await self._scripted(turn, lines, stage)
        if asked_back:
            pass
        elif turn.has(Intent.ROBOT_QUESTION):
            lines.append(self.lines.approved("compliance:disclosure"))
            skip_exits = True
        elif turn.has(Intent.HUMAN_REQUEST):
            if Tool.TRANSFER_TO_HUMAN in tools and self.call.transfer_number:
                return await self._transfer(turn)
            self.journal.decision(stage, Tool.TRANSFER_TO_HUMAN, DecisionStatus.REFUSED,
                                  evidence=turn.evidence(),
                                  detail="no transfer number or not allowed in this stage")
            lines.append(self.lines.approved("compliance:no_transfer"))
            skip_exits = True
            if Tool.SCHEDULE_CALLBACK in tools:
                lines.append(self._callbacks.ask_time())
                asked_back = True
        elif Tool.SCHEDULE_CALLBACK in tools and (
                turn.has(Intent.CALLBACK_REQUEST)
                or (state.awaiting_callback_time and turn.time is not None)):
            if turn.library is not None:
                lines.append(self.lines.approved(f"library:{turn.library.entry_id}"))
            lines.append(self._callbacks.propose(turn, stage))
            asked_back = True
        elif self._booker is not None and Tool.BOOK_APPOINTMENT in tools and self._booker.wants(turn):
            proposal = await self._booker.propose(turn, stage)
            lines += proposal
            asked_back = bool(proposal)
        elif turn.library is not None:
            lines.append(self.lines.approved(f"library:{turn.library.entry_id}"))
            if turn.library.kind == "objection":
                state.objections += 1
            else:
                skip_exits = True
        await self._learn(turn)
        ended, entered = False, False
        if not (asked_back or skip_exits):
            ended, entered = await self._follow_exits(turn, lines)
        if ended:
            return await self._compose.finish(lines, after=After.HANG_UP, reason=state.disposition)
        return await self._compose.finish(lines, changed_stage=entered, asked_back=asked_back)

    def heard(self, reply_id: int, text: str) -> None:
        """What the caller heard of reply `reply_id` (the model's words, or a cut-off reply)."""
        self.state.heard(reply_id, text)

    async def end(self, cause: EndCause) -> CallResult:
        """The call is over: settle the outcome, write what was learned; idempotent."""
        if self._result is not None:
            return self._result
        state = self.state
        if state.outcome is None:
            state.outcome, state.disposition = outcome_for(cause, state, self._score,
                                                          self._not_interested)
        outcome = state.outcome
        if state.facts and self._uses(Tool.UPDATE_LEAD):
            await self._update_lead(LeadChanges(facts=state.fact_values()), "facts at call end")
        self.journal.ended(outcome.value, state.booking is not None)
        self._result = CallResult(
            outcome=outcome, disposition=state.disposition or outcome.value,
            score=state.score, stage=state.stage,
            booking_ref=state.booking.ref if state.booking else None,
            callback_at=state.callback_at)
        return self._result

    def snapshot(self) -> AgentSnapshot:
        state = self.state
        pending = None
        if isinstance(state.pending, PendingBooking):
            pending = f"booking {self.lines.when(state.pending.slot.start)}"
        elif isinstance(state.pending, PendingCallback):
            pending = f"callback {self.lines.when(state.pending.at)}"
        return AgentSnapshot(
            stage=state.stage, score=state.score, qualified=self._score.qualified,
            facts=state.fact_values(), objections=state.objections, turns=state.turns,
            pending=pending, outcome=state.outcome.value if state.outcome else None,
            playbook=self.playbook.playbook, version=self.loaded.version, variant=self.variant.name)

    # -- steps ----------------------------------------------------------------------------------

    async def _settle(self, turn: TurnFacts, stage: str) -> tuple[list[Line], bool]:
        """A pending confirmation meets the caller's answer: (lines, asked something back)."""
        pending = self.state.pending
        if isinstance(pending, PendingBooking) and self._booker is not None:
            if turn.time is not None and self._booker.wants(turn):
                self.state.pending = None
                return await self._booker.propose(turn, stage), True
            if turn.yes_no == "yes":
                return await self._booker.book(pending, turn, stage), self.state.booking is None
            if turn.yes_no == "no":
                self.state.pending = None
                self.journal.decision(stage, Tool.BOOK_APPOINTMENT, DecisionStatus.REFUSED,
                                      evidence=turn.evidence(), detail="the caller said no")
                return [self.lines.line(self._booker.settings.ask_time)], True
        if isinstance(pending, PendingCallback):
            if turn.time is not None:
                self.state.pending = None
                return [self._callbacks.propose(turn, stage)], True
            if turn.yes_no == "yes":
                done = await self._callbacks.schedule(pending, turn, stage)
                if done is None:
                    return [self.lines.approved("compliance:fallback")], False
                self._end_with(Outcome.CALLBACK, f"callback at {pending.at.isoformat()}")
                return [done], False
            if turn.yes_no == "no":
                self.state.pending = None
                return [self._callbacks.ask_time()], True
        return [], False

    async def _scripted(self, turn: TurnFacts, lines: list[Line], stage: str) -> AgentReply:
        """The model is down: take a callback time, or end politely (see the module docstring)."""
        self._scripted_turns += 1
        if self._scripted_turns == 1:
            log.warning("call %s: the language model is unavailable; scripted path",
                        self.call.call_id)
        if turn.time is not None or self._scripted_turns <= SCRIPTED_ASKS:
            lines.append(self._callbacks.propose(turn, stage))  # asks for a time without one
            return await self._compose.finish(lines, asked_back=True)
        lines.append(self.lines.approved("compliance:goodbye"))
        return await self._compose.finish(lines, after=After.HANG_UP,
                                          reason="the language model is unavailable")

    async def _opt_out(self, turn: TurnFacts) -> AgentReply:
        stage = self.state.stage
        try:
            await self._effects.opt_out(self.call.lead, reason=f"asked during {stage}")
            status, detail = DecisionStatus.DONE, None
        except ReautodError as err:
            # The call still ends; the pipeline's own opt-out safety net records the number too.
            log.error("call %s: opt-out could not be stored: %s", self.call.call_id, err.code)
            status, detail = DecisionStatus.FAILED, err.message
        self.journal.decision(stage, Tool.OPT_OUT, status, evidence=turn.evidence(), detail=detail)
        self._end_with(Outcome.OPTED_OUT, f"opted out during {stage}")
        return await self._compose.finish([self.lines.approved("compliance:opt_out")], after=After.HANG_UP,
                                  reason="opted_out")

    async def _transfer(self, turn: TurnFacts) -> AgentReply:
        to = self.call.transfer_number
        self.journal.decision(self.state.stage, Tool.TRANSFER_TO_HUMAN, DecisionStatus.DONE,
                              args={"to": to}, evidence=turn.evidence())
        self.state.transferred_to = to
        return await self._compose.finish([self.lines.approved("compliance:transfer")],
                                  after=After.TRANSFER, reason="the caller asked for a person",
                                  transfer_to=to)

    async def _learn(self, turn: TurnFacts) -> None:
        state, stage = self.state, self.state.stage
        changed = False
        for name, found in turn.facts.items():
            changed |= state.learn(name, found.value, found.evidence, stage)
        self._not_interested |= turn.has(Intent.NOT_INTERESTED)
        asked = state.asked
        if (not changed and asked and asked not in state.facts and self._json_model is not None
                and self.playbook.model.extract and not (turn.intents & _NOT_ANSWERS)
                and model_facts(self.playbook, [asked])):
            values = await extract(self._json_model, self.playbook, [asked],
                                   question=state.last_question, answer=turn.text,
                                   call_id=str(self.call.call_id),
                                   timeout_s=self.playbook.model.extract_timeout_s)
            for name, value in values.items():
                changed |= state.learn(name, value, "model", stage)
        if turn.phones and self._uses(Tool.UPDATE_LEAD, stage):
            await self._update_lead(LeadChanges(alt_phone=turn.phones[0]), "a number the caller gave",
                                    turn)
        if changed:
            self._rescore()

    def rescore(self) -> None:
        """Score the facts known now (after a checkpoint was restored into this agent)."""
        self._rescore()

    def _rescore(self) -> None:
        self._score = score(self.playbook.qualification, self.state.fact_values())
        if self._score.score != self.state.score:
            self.state.score = self._score.score
            self.journal.scored(self._score)

    async def _update_lead(self, changes: LeadChanges, why: str, turn: TurnFacts | None = None) -> None:
        args = {"alt_phone": changes.alt_phone} if changes.alt_phone else {"facts": dict(changes.facts)}
        try:
            await self._effects.update_lead(self.call.lead, changes)
            status, detail = DecisionStatus.DONE, why
        except ReautodError as err:
            status, detail = DecisionStatus.FAILED, f"{why}: {err.message}"
        self.journal.decision(self.state.stage, Tool.UPDATE_LEAD, status, args=args,
                              evidence=turn.evidence() if turn else {}, detail=detail)

    async def _follow_exits(self, turn: TurnFacts, lines: list[Line]) -> tuple[bool, bool]:
        """Take the exits that apply: (the call ends, a new stage was entered)."""
        entered = False
        current: frozenset[Intent] | None = turn.intents
        for _ in range(MAX_CHAINED):
            stage = self.playbook.stages[self.state.stage]
            ex = exit_for(stage, self._situation(current))
            if ex is None:
                break
            reason = describe(ex.when)
            if ex.end is not None:
                outcome = self._exit_outcome(ex)
                self.journal.decision(self.state.stage, Tool.END_CALL, DecisionStatus.DONE,
                                      args={"outcome": outcome.value, "when": reason},
                                      evidence=turn.evidence())
                self._end_with(outcome, f"{self.state.stage}: {reason}")
                if ex.say:
                    # A parting line replaces a library answer the turn drew (no re-pitch).
                    lines[:] = [ln for ln in lines if not (ln.cache_key or "").startswith("library:")]
                    lines.append(self.lines.line(ex.say))
                elif not entered:
                    lines.append(self.lines.approved("compliance:goodbye"))
                return True, entered
            if ex.say:
                lines.append(self.lines.line(ex.say))
            target = cast(str, ex.to)  # an Exit has `to` when it has no `end` (validated)
            self.journal.transition(self.state.stage, target, reason)
            self.state.stage, self.state.stage_turns = target, 0
            self.state.asked = None
            lines += await self._compose.entry_lines(target)
            entered = True
            current = None  # entering: only the state can move on at once
        return False, entered

    def _situation(self, intents: frozenset[Intent] | None) -> Situation:
        state = self.state
        return Situation(intents, state.fact_values(), self._score, state.objections,
                         state.stage_turns, state.booking is not None, state.callback_at is not None)

    def _exit_outcome(self, ex: Exit) -> Outcome:
        if ex.end != "scored":
            return Outcome(str(ex.end))
        return scored_outcome(self.state, self._score)

    def _end_with(self, outcome: Outcome, disposition: str) -> None:
        if self.state.outcome is None:
            self.state.outcome = outcome
            self.state.disposition = disposition

    def _uses(self, tool: Tool, stage: str | None = None) -> bool:
        stages = [self.playbook.stages[stage]] if stage else self.playbook.stages.values()
        return any(tool in s.tools for s in stages)

class AgentFactory:
    """Builds each call's agent with the daemon's shared parts (see reautod.dialogue.ports)."""

    def __init__(self, *, records: RecordSink, effects: CallEffects,
                 window: CallbackWindow | None = None, observer: AgentObserver | None = None,
                 cache: ResponseCache | None = None, json_model: JsonModel | None = None,
                 clock: Clock = _utcnow, region: str = "US",
                 opening: OpeningFields | None = None,
                 model_down: Callable[[], bool] = lambda: False) -> None:
        """`opening`: the opening fields of calls whose context has none (the configured
        agent's, `OpeningFields.from_agent`; by default the configuration's defaults).
        `model_down`: whether calls take the scripted path now (the llm circuit is open)."""
        self._model_down = model_down
        self._records = records
        self._opening = opening or OpeningFields.from_agent(AgentSettings())
        self._effects = effects
        self._window = window
        self._observer = observer
        self._cache = cache
        self._json_model = json_model
        self._clock = clock
        self._region = region
        self._extractors: dict[str, Extractor] = {}

    def start(self, call: AgentCall, loaded: LoadedPlaybook, *,
              scheduler: Scheduler | None = None) -> CallAgent:
        """The agent for `call`, on the variant its lead is assigned (stable per lead)."""
        extractor = self._extractors.get(loaded.content_hash)
        if extractor is None:
            extractor = self._extractors[loaded.content_hash] = Extractor(loaded.playbook,
                                                                          region=self._region)
        variant = assign_variant(loaded.playbook, call.lead.key())
        return CallAgent(call=call, loaded=loaded, variant=variant, extractor=extractor,
                         records=self._records, effects=self._effects, scheduler=scheduler,
                         window=self._window, observer=self._observer, cache=self._cache,
                         json_model=self._json_model, clock=self._clock,
                         opening=call.opening or self._opening, model_down=self._model_down)
