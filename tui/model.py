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
from reautod.dialogue.results import AgentScoreEvent
from reautod.pipeline.results import LiveCallList

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


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


# The pipeline's latency keys (reautod.call_events.LATENCY_KEYS) -> our stage names.
_STAGE_ALIASES = {"stt": "transcript", "llm_first_token": "first_token",
                  "tts_first_audio": "first_audio"}


def _latencies(raw: Any) -> dict[str, float]:
    """`{"stt_s": 0.18, "voice_to_voice_s": 0.62}` -> `{"transcript": 0.18, "voice_to_voice": 0.62}`."""
    if not isinstance(raw, Mapping):
        return {}
    out: dict[str, float] = {}
    for key, value in raw.items():
        seconds = _float(value)
        if isinstance(key, str) and seconds is not None:
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
    outcome: str | None = None
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

    def merge(self, data: Mapping[str, Any]) -> None:
        """Fill fields from an event's data (call.ended, cost.update), keeping the rest."""
        self.lead = _str(data.get("lead_name"), _str(data.get("lead"), self.lead))
        self.campaign = _str(data.get("campaign"), self.campaign)
        self.state = _str(data.get("state"), self.state)
        self.started_at = parse_ts(data.get("started_at")) or self.started_at
        self.last_utterance = _str(data.get("last_utterance"), self.last_utterance)
        cost = _int(data.get("cost_micros"))
        self.cost_micros = cost if cost is not None else self.cost_micros
        v2v = _float(data.get("last_voice_to_voice_s"))
        if v2v is None:
            v2v = _float(data.get("voice_to_voice_s"))
        self.voice_to_voice_s = v2v if v2v is not None else self.voice_to_voice_s
        self.agent = _str(data.get("agent"), self.agent)

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

    def _parsed(self, model: type[_Event], data: Mapping[str, Any]) -> tuple[_Event, Call] | None:
        """A typed event and its call; None (counted as malformed) if it does not parse."""
        try:
            event = model.model_validate(data)
        except PydanticValidationError:
            self.events_malformed += 1
            return None
        call = self._live_call(data)
        return None if call is None else (event, call)

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
        call = self._live_call(data)
        if call is None or call.outcome is not None:
            return None  # a repeated call.ended counts once
        call.merge(data)
        # an outcome when the dialogue decided one, else the pipeline's end reason ("failed: ...")
        reason = _str(data.get("reason")).split(":", 1)[0].strip()
        call.outcome = _str(data.get("outcome")) or reason or "ended"
        call.state = "ended"
        duration = _float(data.get("duration_s"))
        if duration is not None and call.started_at is not None:
            call.ended_at = call.started_at + timedelta(seconds=duration)
        else:
            call.ended_at = ts or self.clock()
        self._roll_day()
        self._outcomes_seen[call.outcome] += 1
        self.calls.pop(call.call_id, None)
        self._retire(call)
        return call.call_id

    def _on_turn(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        call = self._live_call(data)
        if call is None:
            return None
        text = _str(data.get("text"))
        speaker = _str(data.get("speaker"), "?")
        latencies = _latencies(data.get("latencies"))
        call.add_turn(Turn(speaker, text, _float(data.get("confidence")), latencies,
                           interrupted=data.get("interrupted") is True,
                           error=_str(data.get("error"))))
        if text:
            call.last_utterance = text
        for stage in LATENCY_STAGES:
            if stage in latencies:
                self.latencies[stage].append(latencies[stage])
        if "voice_to_voice" in latencies:
            call.voice_to_voice_s = latencies["voice_to_voice"]
        return call.call_id

    def _on_barge_in(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        call = self._live_call(data)
        if call is None:
            return None
        latencies = {"clear": v} if (v := _float(data.get("clear_s"))) is not None else {}
        heard = _str(data.get("heard_text"), _str(data.get("text")))
        call.add_turn(Turn("barge_in", heard, None, latencies))
        return call.call_id

    def _on_agent_transition(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        call = self._live_call(data)
        if call is None:
            return None
        call.agent = _str(data.get("to"), call.agent)
        return call.call_id

    def _on_agent_score(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        parsed = self._parsed(AgentScoreEvent, data)
        if parsed is None:
            return None
        event, call = parsed
        call.score, call.qualified = event.score, event.qualified
        return call.call_id

    def _on_cost(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        call = self._live_call(data)
        if call is not None:
            call.merge(data)
        return call.call_id if call else None

    def _on_health(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        name = _str(data.get("name"))
        if not name:
            self.events_malformed += 1
            return None
        check = HealthCheck(name, bool(data.get("ok")), _str(data.get("detail")))
        self.health = [c for c in self.health if c.name != name] + [check]
        self.health.sort(key=lambda c: c.name)
        self.health_ok = all(c.ok for c in self.health)
        self.log.append(LogLine(ts, "INFO" if check.ok else "WARNING", "health",
                                f"{name}: {'ok' if check.ok else 'FAIL'} {check.detail}".strip()))
        return None

    def _on_log(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        self.log.append(LogLine(ts, _str(data.get("level"), "?"), _str(data.get("logger")),
                                _str(data.get("message"))))
        return None

    def _on_daemon_state(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        state = _str(data.get("state"))
        if state:
            self.daemon_state = state
            self.log.append(LogLine(ts, "INFO", "daemon", f"daemon {state}"))
        return None

    def _on_lagged(self, data: Mapping[str, Any], ts: datetime | None) -> str | None:
        dropped = _int(data.get("dropped")) or 0
        self.events_lagged += dropped
        self.log.append(LogLine(ts, "WARNING", "tui",
                                f"missed {dropped} events (too slow); the next refresh catches up"))
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


_Handler = Callable[[LiveState, Mapping[str, Any], "datetime | None"], "str | None"]
_HANDLERS: dict[str, _Handler] = {
    "call.started": LiveState._on_call_started,
    "call.state": LiveState._on_call_state,
    "call.ended": LiveState._on_call_ended,
    "turn": LiveState._on_turn,
    "barge_in": LiveState._on_barge_in,
    "agent.transition": LiveState._on_agent_transition,
    AgentScoreEvent.TOPIC: LiveState._on_agent_score,
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
