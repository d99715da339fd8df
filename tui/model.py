"""What the TUI knows about the daemon, built from method results and events; no I/O, no widgets.

Wire data (JSON from the control socket) is turned into these dataclasses here, at the edge, and
nowhere else. Missing optional fields are tolerated (an older daemon, a part not built yet);
a malformed event is skipped and counted, never allowed to take the TUI down.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from reautod.call_events import CallStateEvent, CallStateSource, LiveCall
from reautod.campaigns.results import CampaignList, CampaignSummary
from reautod.control.results import DaemonStatus, HealthReport
from reautod.cost.results import BudgetAlert, CostUpdate
from reautod.dialogue.results import AgentScoreEvent
from reautod.pipeline.results import LiveCallList
from reautod.topics import (
    AdmissionChanged,
    AgentOutcome,
    AgentTransition,
    BargeIn,
    CallEnded,
    CircuitChanged,
    DaemonStateChanged,
    Dtmf,
    HealthChanged,
    Lagged,
    LogRecord,
    RecordingStopped,
    TurnEvent,
)

# Stages of a turn's latency, in pipeline order, as carried in `turn` events' `latencies`.
LATENCY_STAGES = ("transcript", "first_token", "first_audio", "voice_to_voice")
LATENCY_WINDOW = 100  # turns in the rolling percentiles
TRANSCRIPT_LIMIT = 500  # turns kept per call
ENDED_KEPT = 50  # ended calls kept for their detail screen
LOG_LIMIT = 1000
_Event = TypeVar("_Event", bound=BaseModel)


def parse_ts(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


# The pipeline's latency keys (reautod.call_events.LATENCY_KEYS) -> our stage names.
_STAGE_ALIASES = {"stt": "transcript", "llm_first_token": "first_token",
                  "tts_first_audio": "first_audio"}


def _latencies(raw: Mapping[str, float]) -> dict[str, float]:
    """`{"stt_s": 0.18, "voice_to_voice_s": 0.62}` -> `{"transcript": 0.18, "voice_to_voice": 0.62}`."""
    out: dict[str, float] = {}
    for key, seconds in raw.items():
        stage = key.removesuffix("_s")
        out[_STAGE_ALIASES.get(stage, stage)] = seconds
    return out


@dataclass(frozen=True)
class Turn:
    """One line of a call's transcript; `speaker` is caller, agent, or barge_in."""

    speaker: str
    text: str
    confidence: float | None = None
    latencies: Mapping[str, float] = field(default_factory=dict)
    interrupted: bool = False  # the caller barged in while this agent turn played
    error: str = ""  # engine failure code when the turn ended in an apology

    @property
    def is_barge_in(self) -> bool:
        return self.speaker == "barge_in"


@dataclass
class Call:
    call_id: str
    lead: str = ""
    campaign: str = ""
    state: str = "starting"
    pipeline_state: str = ""  # the pipeline's own state (CallState), last seen
    started_at: datetime | None = None
    last_utterance: str = ""
    cost_micros: int | None = None
    voice_to_voice_s: float | None = None
    agent: str = ""  # the qualifying agent's stage
    score: int | None = None  # the lead score the agent set last (agent.score)
    qualified: bool = False
    outcome: str | None = None  # counted under this once ended
    agent_outcome: str = ""  # the agent's verdict (agent.outcome), when a playbook ran
    ended_at: datetime | None = None
    turns: list[Turn] = field(default_factory=list)
    touched: int = 0  # LiveState.event_seq of the last event about this call

    @property
    def live(self) -> bool:
        return self.outcome is None and self.ended_at is None

    def stage_and_score(self) -> str:
        """The qualifying agent's stage and the lead's score: "qualifier 65", "scheduler 90 ✓"
        (qualified); "" for a call no playbook answers."""
        if not self.agent and self.score is None:
            return ""
        score = "" if self.score is None else f" {self.score}{' ✓' if self.qualified else ''}"
        return f"{self.agent or '-'}{score}"

    def merge_live(self, live: LiveCall) -> None:
        """Take what a calls.list row or a call.started event says of the call. Its state is
        the pipeline's: it replaces the shown state only when the pipeline moved, so the phone
        line's last word (a call.state event: "transferred") is not undone by a later poll."""
        self.lead = live.lead_name or self.lead
        self.campaign = live.campaign or self.campaign
        if live.state.value != self.pipeline_state:
            self.state = self.pipeline_state = live.state.value
        self.started_at = live.started_at
        self.last_utterance = live.last_utterance or self.last_utterance
        if live.last_voice_to_voice_s is not None:
            self.voice_to_voice_s = live.last_voice_to_voice_s

    def add_turn(self, turn: Turn) -> None:
        self.turns.append(turn)
        del self.turns[:-TRANSCRIPT_LIMIT]


@dataclass(frozen=True)
class HealthCheck:
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class LogLine:
    ts: datetime | None
    level: str
    source: str
    message: str


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


class LiveState:
    """Everything the screens show; `apply_event` and `apply_snapshot` are the only writers."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.connected = False
        self.disconnect_reason = ""
        self.daemon: DaemonStatus | None = None  # the last `status` answer
        self.daemon_state = ""  # from `status`, then `daemon.state` events
        self.calls: dict[str, Call] = {}  # live calls, in start order
        self.ended: collections.OrderedDict[str, Call] = collections.OrderedDict()
        self.health: list[HealthCheck] = []
        self.health_ok: bool | None = None
        self.campaigns: list[CampaignSummary] = []
        self.log: collections.deque[LogLine] = collections.deque(maxlen=LOG_LIMIT)
        self.latencies: dict[str, collections.deque[float]] = {
            stage: collections.deque(maxlen=LATENCY_WINDOW) for stage in LATENCY_STAGES
        }
        self._outcomes_day: date = clock().date()
        self._outcomes_seen: collections.Counter[str] = collections.Counter()
        self.events_lagged = 0
        self.events_malformed = 0
        self.method_errors: dict[str, str] = {}  # snapshot methods failing now
        self.event_seq = 0  # events applied so far
        self._snapshot_seq = 0  # event_seq when the previous snapshot was applied

    # -- reads ----------------------------------------------------------------------------------

    def call(self, call_id: str) -> Call | None:
        return self.calls.get(call_id) or self.ended.get(call_id)

    def duration_s(self, call: Call) -> float | None:
        if call.started_at is None:
            return None
        end = call.ended_at or self.clock()
        return max(0.0, (end - call.started_at).total_seconds())

    def percentiles(self, stage: str) -> tuple[int, float | None, float | None, float | None]:
        values = list(self.latencies[stage])
        return (len(values), percentile(values, 0.5), percentile(values, 0.95),
                percentile(values, 0.99))

    def outcomes_today(self) -> dict[str, int]:
        """Counted from the call.ended events seen today (the daemon reports no day's count)."""
        self._roll_day()
        return dict(sorted(self._outcomes_seen.items()))

    # -- writes ---------------------------------------------------------------------------------

    def set_connected(self, connected: bool, reason: str = "") -> None:
        self.connected = connected
        self.disconnect_reason = "" if connected else reason

    def note_method_errors(self, errors: Mapping[str, str]) -> None:
        """Log a snapshot method's failure once when it starts, and once when it recovers."""
        for method, message in errors.items():
            if self.method_errors.get(method) != message:
                self.log.append(LogLine(self.clock(), "WARNING", "tui", f"{method} failed: {message}"))
        for method in self.method_errors.keys() - errors.keys():
            self.log.append(LogLine(self.clock(), "INFO", "tui", f"{method} answers again"))
        self.method_errors = dict(errors)

    def apply_snapshot(
        self,
        status: Any,
        health: Any,
        calls: Any,
        campaigns: Any,
    ) -> None:
        """Replace what the periodic poll re-reads, each answer parsed with its result model; a
        None part (method absent) keeps the old."""
        daemon = self._typed(DaemonStatus, status, "status") if status is not None else None
        if daemon is not None:
            self.daemon, self.daemon_state = daemon, daemon.state
        report = self._typed(HealthReport, health, "health") if health is not None else None
        if report is not None:
            self.health = [HealthCheck(name, c.ok, c.detail) for name, c in report.checks.items()]
            self.health_ok = report.ok
        listing = self._typed(LiveCallList, calls, "calls.list") if calls is not None else None
        if listing is not None:
            live: dict[str, Call] = {}
            for row in listing.calls:
                call = self.calls.get(row.call_id) or Call(row.call_id)
                call.merge_live(row)
                live[row.call_id] = call
            for call_id, call in self.calls.items():
                if call_id in live:
                    continue
                if call.touched > self._snapshot_seq:
                    # an event about it arrived since the last snapshot: this list may have been
                    # read before the call started, so keep it until the next one says otherwise
                    live[call_id] = call
                else:
                    self._retire(call)
            self.calls = live
        self._snapshot_seq = self.event_seq
        listed = (self._typed(CampaignList, campaigns, "campaigns.list")
                  if campaigns is not None else None)
        if listed is not None:
            self.campaigns = list(listed.campaigns)

    def _typed(self, model: type[_Event], data: Any, method: str) -> _Event | None:
        """A snapshot method's answer parsed with its result model; None if it does not parse
        (a daemon of another version: said once per refresh, the last good answer is kept)."""
        try:
            return model.model_validate(data)
        except PydanticValidationError as err:
            self.log.append(LogLine(self.clock(), "WARNING", "tui",
                                    f"{method} answered an unknown shape: {err}"))
            return None

    def apply_event(self, message: Mapping[str, Any]) -> str | None:
        """Apply one `{"event", "ts", "data"}`; returns the call id it touched, if any."""
        name = message.get("event")
        data = message.get("data")
        if not isinstance(name, str) or not isinstance(data, Mapping):
            self.events_malformed += 1
            return None
        ts = parse_ts(message.get("ts"))
        self.event_seq += 1
        handler = _HANDLERS.get(name)
        if handler is None:
            return None  # an event this TUI does not know yet: ignore it
        return handler(self, data, ts)

    # -- event handlers -------------------------------------------------------------------------

    def _live_call(self, data: Mapping[str, Any]) -> Call | None:
        call_id = _str(data.get("call_id"))
        if not call_id:
            self.events_malformed += 1
            return None
        call = self.call(call_id)
        if call is None:
            call = Call(call_id)
            self.calls[call_id] = call
        call.touched = self.event_seq
        return call

    def _on_call_started(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        parsed = self._parsed(LiveCall, data)
        if parsed is None:
            return None
        event, call = parsed
        call.merge_live(event)
        return call.call_id

    def _payload(self, model: type[_Event], data: Mapping[str, Any]) -> _Event | None:
        """An event's data parsed with its topic's model; None (counted as malformed) if it
        does not parse."""
        try:
            return model.model_validate(data)
        except PydanticValidationError:
            self.events_malformed += 1
            return None

    def _parsed(self, model: type[_Event], data: Mapping[str, Any]) -> tuple[_Event, Call] | None:
        """A typed call event and its call; None (counted as malformed) if it does not parse."""
        event = self._payload(model, data)
        call = self._live_call(data) if event is not None else None
        return None if event is None or call is None else (event, call)

    def _on_call_state(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        parsed = self._parsed(CallStateEvent, data)
        if parsed is None:
            return None
        event, call = parsed
        if event.source is CallStateSource.PIPELINE:
            call.pipeline_state = event.state
        if call.live:  # the line's last word (Twilio's "completed") after the call ended
            call.state = event.state
        call.campaign = event.campaign or call.campaign
        return call.call_id

    def _on_call_ended(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        parsed = self._parsed(CallEnded, data)
        if parsed is None or parsed[1].outcome is not None:
            return None  # a repeated call.ended counts once
        event, call = parsed
        # the agent's verdict (agent.outcome) when a playbook ran, else the pipeline's end
        # reason ("failed: TimeoutError" counts as "failed")
        reason = event.reason.split(":", 1)[0].strip()
        call.outcome = call.agent_outcome or reason or "ended"
        call.state = "ended"
        if call.started_at is not None:
            call.ended_at = call.started_at + timedelta(seconds=event.duration_s)
        else:
            call.ended_at = ts or self.clock()
        self._roll_day()
        self._outcomes_seen[call.outcome] += 1
        self.calls.pop(call.call_id, None)
        self._retire(call)
        return call.call_id

    def _on_agent_outcome(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        parsed = self._parsed(AgentOutcome, data)
        if parsed is None:
            return None
        event, call = parsed
        call.agent_outcome = event.outcome
        if call.outcome is not None and call.outcome != event.outcome:
            # the verdict came after the media ended: count the call under it instead
            self._roll_day()
            self._outcomes_seen[call.outcome] -= 1
            self._outcomes_seen += collections.Counter()  # drops a count that fell to zero
            call.outcome = event.outcome
            self._outcomes_seen[call.outcome] += 1
        return call.call_id

    def _on_turn(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        parsed = self._parsed(TurnEvent, data)
        if parsed is None:
            return None
        event, call = parsed
        latencies = _latencies(event.latencies)
        call.add_turn(Turn(event.speaker, event.text, event.confidence, latencies,
                           interrupted=event.interrupted, error=event.error or ""))
        if event.text:
            call.last_utterance = event.text
        for stage in LATENCY_STAGES:
            if stage in latencies:
                self.latencies[stage].append(latencies[stage])
        if "voice_to_voice" in latencies:
            call.voice_to_voice_s = latencies["voice_to_voice"]
        return call.call_id

    def _on_barge_in(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        parsed = self._parsed(BargeIn, data)
        if parsed is None:
            return None
        event, call = parsed
        call.add_turn(Turn("barge_in", event.heard_text))
        return call.call_id

    def _on_agent_transition(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        parsed = self._parsed(AgentTransition, data)
        if parsed is None:
            return None
        event, call = parsed
        call.agent = event.to
        return call.call_id

    def _on_agent_score(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        parsed = self._parsed(AgentScoreEvent, data)
        if parsed is None:
            return None
        event, call = parsed
        call.score, call.qualified = event.score, event.qualified
        return call.call_id

    def _on_cost(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        parsed = self._parsed(CostUpdate, data)
        if parsed is None:
            return None
        event, call = parsed
        call.cost_micros = event.cost_micros
        return call.call_id

    def _on_health(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        event = self._payload(HealthChanged, data)
        if event is None:
            return None
        check = HealthCheck(event.name, event.ok, event.detail)
        self.health = [c for c in self.health if c.name != event.name] + [check]
        self.health.sort(key=lambda c: c.name)
        self.health_ok = all(c.ok for c in self.health)
        self.log.append(LogLine(ts, "INFO" if check.ok else "WARNING", "health",
                                f"{check.name}: {'ok' if check.ok else 'FAIL'} "
                                f"{check.detail}".strip()))
        return None

    def _on_log(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        event = self._payload(LogRecord, data)
        if event is not None:
            self.log.append(LogLine(ts, event.level, event.logger, event.message))
        return None

    def _on_daemon_state(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        event = self._payload(DaemonStateChanged, data)
        if event is not None:
            self.daemon_state = event.state
            self.log.append(LogLine(ts, "INFO", "daemon", f"daemon {event.state}"))
        return None

    def _on_lagged(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        event = self._payload(Lagged, data)
        if event is None:
            return None
        self.events_lagged += event.dropped
        self.log.append(LogLine(ts, "WARNING", "tui", f"missed {event.dropped} events (too "
                                "slow); the next refresh catches up"))
        return None

    # -- helpers --------------------------------------------------------------------------------

    def _retire(self, call: Call) -> None:
        if call.ended_at is None:
            call.ended_at = self.clock()  # gone from calls.list without a call.ended we saw
        self.ended[call.call_id] = call
        self.ended.move_to_end(call.call_id)
        while len(self.ended) > ENDED_KEPT:
            self.ended.popitem(last=False)

    def _roll_day(self) -> None:
        today = self.clock().date()
        if today != self._outcomes_day:
            self._outcomes_day = today
            self._outcomes_seen.clear()


# Each topic's one payload model, as the daemon publishes it (docs/control-protocol.md).
PAYLOADS: dict[str, type[BaseModel]] = {
    "call.started": LiveCall,
    CallStateEvent.TOPIC: CallStateEvent,
    "call.ended": CallEnded,
    "turn": TurnEvent,
    "barge_in": BargeIn,
    "dtmf": Dtmf,
    "agent.transition": AgentTransition,
    AgentScoreEvent.TOPIC: AgentScoreEvent,
    "agent.outcome": AgentOutcome,
    "cost.update": CostUpdate,
    "budget.alert": BudgetAlert,
    "health.changed": HealthChanged,
    "circuit.changed": CircuitChanged,
    AdmissionChanged.TOPIC: AdmissionChanged,
    RecordingStopped.TOPIC: RecordingStopped,
    "daemon.state": DaemonStateChanged,
    "log": LogRecord,
    "lagged": Lagged,
}

_Handler = Callable[[LiveState, Mapping[str, Any], "datetime | None"], "str | None"]
_HANDLERS: dict[str, _Handler] = {
    "call.started": LiveState._on_call_started,
    "call.state": LiveState._on_call_state,
    "call.ended": LiveState._on_call_ended,
    "turn": LiveState._on_turn,
    "barge_in": LiveState._on_barge_in,
    "agent.transition": LiveState._on_agent_transition,
    AgentScoreEvent.TOPIC: LiveState._on_agent_score,
    "agent.outcome": LiveState._on_agent_outcome,
    "cost.update": LiveState._on_cost,
    "health.changed": LiveState._on_health,
    "log": LiveState._on_log,
    "daemon.state": LiveState._on_daemon_state,
    "lagged": LiveState._on_lagged,
}


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def format_money(micros: int | None) -> str:
    return "-" if micros is None else f"${micros / 1_000_000:.2f}"
