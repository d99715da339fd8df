"""The Prometheus metrics of reautod: one `Metrics` object, created once and passed to the parts.

Every metric lives in the object's own `CollectorRegistry` (never the global one), so tests and a
restarted daemon start from zero. Names follow Prometheus conventions: `reautod_` prefix, base
units (`_seconds`, `_bytes`, `_dollars`), `_total` on counters. Labels take only values from the
small fixed sets below, which are pre-created so every series exists (at 0) from the first scrape;
a call id or phone number is never a label. The typed helper methods refuse values outside the
sets, so a typo cannot create a new series.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.registry import Collector

from reautod.engines.base import RequestTiming
from reautod.errors import ValidationError
from reautod.resilience.settings import SERVICES

EngineName = Literal["stt", "llm", "tts"]
DialBlockReason = Literal["window", "dnc", "budget"]
MediaDropReason = Literal["malformed", "overflow"]
SocketKind = Literal["control", "websocket"]
SheetsResult = Literal["ok", "throttled", "failed"]

ENGINES: Final = ("stt", "llm", "tts")
DIAL_BLOCK_REASONS: Final = ("window", "dnc", "budget")
MEDIA_DROP_REASONS: Final = ("malformed", "overflow")
SOCKET_KINDS: Final = ("control", "websocket")
# Outbox deliveries: how a message travels, and what one attempt came to.
OUTBOX_CHANNELS: Final = ("webhook", "sms", "email", "sheets")
OUTBOX_RESULTS: Final = ("delivered", "retry", "dead")
SHEETS_RESULTS: Final = ("ok", "throttled", "failed")
# Call outcomes and AMD results as the call state machine and Twilio's AnsweredBy report them.
CALL_OUTCOMES: Final = (
    "completed", "qualified", "not_interested", "callback", "voicemail", "no_answer", "busy",
    "failed", "canceled", "dnc_requested", "transferred",
)
AMD_RESULTS: Final = (
    "human", "machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other",
    "fax", "unknown",
)

# Turn latencies: fine steps across 0.1-1 s, where the voice-to-voice SLO lives, coarser beyond.
TURN_LATENCY_BUCKETS: Final = (
    0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0,
    1.25, 1.5, 2.0, 3.0, 5.0, 10.0,
)
ENGINE_SECONDS_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, 10.0, 30.0,
)
CALL_COST_BUCKETS: Final = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)

# Cost and budgets (appended for the cost part).
COST_SERVICES: Final = ("telephony", "stt", "llm", "tts", "amd", "recording", "other")
BUDGET_PERIODS: Final = ("day", "week", "month")
BUDGET_ALERT_KINDS: Final = ("threshold", "forecast")
VOICE_TIERS: Final = ("local", "premium")
PREMIUM_FALLBACK_REASONS: Final = (
    "breaker_open", "rate_limited", "server_error", "timeout", "quota", "failed")

# Circuit breakers and retries (reautod.resilience): services and what a circuit or retry did.
CIRCUIT_SERVICES: Final = SERVICES
RECORDING_STOP_REASONS: Final = ("disk_full", "write_failed")
CIRCUIT_STATES: Final = ("closed", "open", "half_open")
RETRY_RESULTS: Final = ("retried", "budget_exhausted")

# The turn-latency histograms, by the short stage name used in events and summaries.
TURN_STAGES: Final = ("transcript", "first_token", "first_audio", "voice_to_voice", "barge_in_clear")


def _check(value: str, allowed: Iterable[str], label: str) -> str:
    if value not in allowed:
        raise ValidationError(f"metric label {label}={value!r} is not one of {sorted(allowed)}")
    return value


class Metrics:
    """Every reautod metric as an attribute, registered in `self.registry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry

        self.build_info = Info("reautod_build", "reautod version", registry=r)

        # Per-turn latencies, all measured from the end of the caller's speech (VAD/turn end).
        def turn(name: str, doc: str) -> Histogram:
            return Histogram(name, doc, buckets=TURN_LATENCY_BUCKETS, registry=r)

        self.turn_transcript_seconds = turn(
            "reautod_turn_transcript_seconds", "End of caller speech to final transcript")
        self.turn_first_token_seconds = turn(
            "reautod_turn_first_token_seconds", "End of caller speech to first LLM token")
        self.turn_first_audio_seconds = turn(
            "reautod_turn_first_audio_seconds", "End of caller speech to first TTS audio")
        self.turn_voice_to_voice_seconds = turn(
            "reautod_turn_voice_to_voice_seconds",
            "End of caller speech to first agent audio byte sent to the caller (voice-to-voice)")
        self.barge_in_clear_seconds = turn(
            "reautod_barge_in_clear_seconds", "Caller barge-in detected to clear sent to the transport")

        # Shared engines (label engine = stt | llm | tts).
        self.engine_queue_depth = Gauge(
            "reautod_engine_queue_depth", "Requests waiting in the engine queue", ["engine"], registry=r)
        self.engine_queue_wait_seconds = Histogram(
            "reautod_engine_queue_wait_seconds", "Time a request waited in the engine queue",
            ["engine"], buckets=ENGINE_SECONDS_BUCKETS, registry=r)
        self.engine_compute_seconds = Histogram(
            "reautod_engine_compute_seconds", "Inference time of one engine request",
            ["engine"], buckets=ENGINE_SECONDS_BUCKETS, registry=r)
        self.engine_requests_total = Counter(
            "reautod_engine_requests", "Engine requests finished (any result)", ["engine"], registry=r)
        self.engine_cancelled_total = Counter(
            "reautod_engine_cancelled", "Engine requests cancelled (barge-in, hang-up)", ["engine"],
            registry=r)
        self.engine_failures_total = Counter(
            "reautod_engine_failures", "Engine requests that failed or timed out", ["engine"], registry=r)
        self.engine_rejected_total = Counter(
            "reautod_engine_rejected", "Engine requests refused because the queue was full",
            ["engine"], registry=r)

        # Calls and the dialer.
        self.live_calls = Gauge("reautod_live_calls", "Calls in progress", registry=r)
        self.calls_total = Counter("reautod_calls", "Finished calls by outcome", ["outcome"], registry=r)
        self.amd_results_total = Counter(
            "reautod_amd_results", "Answering-machine detection results", ["result"], registry=r)
        self.dial_blocked_total = Counter(
            "reautod_dial_attempts_blocked", "Dial attempts refused before dialling", ["reason"],
            registry=r)
        self.webhook_signature_failures_total = Counter(
            "reautod_webhook_signature_failures", "Twilio webhooks refused for a bad signature",
            registry=r)
        self.media_frames_dropped_total = Counter(
            "reautod_media_frames_dropped", "Media-stream frames dropped (malformed or overflow)",
            ["reason"], registry=r)

        # Business.
        self.qualified_leads_total = Counter(
            "reautod_qualified_leads", "Leads the agent qualified", registry=r)
        self.appointments_booked_total = Counter(
            "reautod_appointments_booked", "Appointments booked for a human", registry=r)
        self.call_cost_dollars = Histogram(
            "reautod_call_cost_dollars", "Total cost of one finished call in US dollars",
            buckets=CALL_COST_BUCKETS, registry=r)
        self.cost_dollars_total = Counter(
            "reautod_cost_dollars", "Money spent on calls (telephony, engines, premium TTS)",
            registry=r)

        # Integrations: the outbox (webhooks, booking confirmations), calendar, Google Sheets.
        self.outbox_deliveries_total = Counter(
            "reautod_outbox_deliveries", "Outbox delivery attempts by channel and result",
            ["channel", "result"], registry=r)
        self.outbox_delivery_seconds = Histogram(
            "reautod_outbox_delivery_seconds", "Time one outbox delivery attempt took",
            ["channel"], buckets=ENGINE_SECONDS_BUCKETS, registry=r)
        self.outbox_pending = Gauge(
            "reautod_outbox_pending", "Outbox messages not yet delivered (pending or in flight)",
            registry=r)
        self.outbox_dead_letters = Gauge(
            "reautod_outbox_dead_letters", "Outbox messages given up on, awaiting an operator",
            registry=r)
        self.outbox_oldest_pending_seconds = Gauge(
            "reautod_outbox_oldest_pending_seconds", "Age of the oldest undelivered outbox message",
            registry=r)
        self.calendar_conflicts_total = Counter(
            "reautod_calendar_conflicts", "Bookings refused because the slot was taken meanwhile",
            registry=r)
        self.sheets_requests_total = Counter(
            "reautod_sheets_requests", "Google Sheets API requests by result", ["result"],
            registry=r)

        # Process.
        self.event_loop_lag_seconds = Gauge(
            "reautod_event_loop_lag_seconds",
            "How late the event loop woke a sleeping task, last measurement", registry=r)
        self.open_sockets = Gauge(
            "reautod_open_sockets", "Open client connections by kind", ["kind"], registry=r)
        self.control_events_dropped_total = Counter(
            "reautod_control_events_dropped", "Events dropped for slow control subscribers (lagged)",
            registry=r)

        # Circuit breakers (reautod.resilience).
        self.circuits_not_closed = Gauge(
            "reautod_circuits_not_closed", "Circuits of a service that are open or half-open",
            ["service"], registry=r)
        self.circuit_transitions_total = Counter(
            "reautod_circuit_transitions", "Circuit state changes by service and new state",
            ["service", "state"], registry=r)
        self.retries_total = Counter(
            "reautod_retries", "Retries of transient failures: made, or refused by the budget",
            ["service", "result"], registry=r)
        # Degradation (reautod.resilience): what the box gave up to keep calls going.
        self.recordings_stopped_total = Counter(
            "reautod_recordings_stopped", "Call recordings stopped mid-call (the call went on)",
            ["reason"], registry=r)
        self.engine_out_of_memory_total = Counter(
            "reautod_engine_out_of_memory", "Engine requests that ran out of (GPU) memory",
            ["engine"], registry=r)
        self.admission_limit = Gauge(
            "reautod_admission_limit", "Live calls the box takes now (calls.max_concurrent, "
            "lowered after running out of memory)", registry=r)
        self.inbound_shed_total = Counter(
            "reautod_inbound_shed", "Inbound calls answered with the busy message, by reason",
            ["reason"], registry=r)
        for reason in RECORDING_STOP_REASONS:
            self.recordings_stopped_total.labels(reason=reason)
        for service in CIRCUIT_SERVICES:
            self.circuits_not_closed.labels(service=service)
            for state in CIRCUIT_STATES:
                self.circuit_transitions_total.labels(service=service, state=state)
            for result in RETRY_RESULTS:
                self.retries_total.labels(service=service, result=result)

        for engine in ENGINES:
            for m in (self.engine_queue_depth, self.engine_queue_wait_seconds,
                      self.engine_compute_seconds, self.engine_requests_total,
                      self.engine_cancelled_total, self.engine_failures_total,
                      self.engine_rejected_total):
                m.labels(engine=engine)
        for outcome in CALL_OUTCOMES:
            self.calls_total.labels(outcome=outcome)
        for result in AMD_RESULTS:
            self.amd_results_total.labels(result=result)
        for reason in DIAL_BLOCK_REASONS:
            self.dial_blocked_total.labels(reason=reason)
        for reason in MEDIA_DROP_REASONS:
            self.media_frames_dropped_total.labels(reason=reason)
        for kind in SOCKET_KINDS:
            self.open_sockets.labels(kind=kind)
        for channel in OUTBOX_CHANNELS:
            self.outbox_delivery_seconds.labels(channel=channel)
            for result in OUTBOX_RESULTS:
                self.outbox_deliveries_total.labels(channel=channel, result=result)
        for result in SHEETS_RESULTS:
            self.sheets_requests_total.labels(result=result)

        # Cost, budgets and the premium voice.
        self.cost_by_service_dollars_total = Counter(
            "reautod_cost_by_service_dollars", "Money spent by service, from the cost ledger",
            ["service"], registry=r)
        self.budget_used_ratio = Gauge(
            "reautod_budget_used_ratio",
            "Highest spent/limit ratio among the budgets of a period (1 = at the cap)",
            ["period"], registry=r)
        self.budget_projected_ratio = Gauge(
            "reautod_budget_projected_ratio",
            "Highest projected period-end spend/limit ratio among the budgets of a period",
            ["period"], registry=r)
        self.budget_alerts_total = Counter(
            "reautod_budget_alerts", "Budget alerts fired (once per period and threshold)",
            ["kind"], registry=r)
        self.spending_stopped = Gauge(
            "reautod_spending_stopped", "1 while the emergency spending stop is on", registry=r)
        self.cost_reconciled_dollars_total = Counter(
            "reautod_cost_reconciled_dollars", "Call prices Twilio reported, reconciled calls",
            registry=r)
        self.cost_ledger_error_dollars_total = Counter(
            "reautod_cost_ledger_error_dollars",
            "Absolute difference between Twilio's call prices and our metered telephony",
            registry=r)
        self.tts_tier_decisions_total = Counter(
            "reautod_tts_tier_decisions", "Voice tier decisions by tier", ["tier"], registry=r)
        self.premium_tts_fallbacks_total = Counter(
            "reautod_premium_tts_fallbacks", "Premium speech handed to the local voice, by cause",
            ["reason"], registry=r)
        self.elevenlabs_quota_remaining_characters = Gauge(
            "reautod_elevenlabs_quota_remaining_characters",
            "Characters left in the ElevenLabs subscription period (last read)", registry=r)
        for service in COST_SERVICES:
            self.cost_by_service_dollars_total.labels(service=service)
        for period in BUDGET_PERIODS:
            self.budget_used_ratio.labels(period=period)
            self.budget_projected_ratio.labels(period=period)
        for kind in BUDGET_ALERT_KINDS:
            self.budget_alerts_total.labels(kind=kind)
        for tier in VOICE_TIERS:
            self.tts_tier_decisions_total.labels(tier=tier)
        for reason in PREMIUM_FALLBACK_REASONS:
            self.premium_tts_fallbacks_total.labels(reason=reason)

        self._turn_histograms: dict[str, Histogram] = {
            "transcript": self.turn_transcript_seconds,
            "first_token": self.turn_first_token_seconds,
            "first_audio": self.turn_first_audio_seconds,
            "voice_to_voice": self.turn_voice_to_voice_seconds,
            "barge_in_clear": self.barge_in_clear_seconds,
        }

    def register(self, collector: Collector) -> None:
        """Add a custom collector (e.g. `GpuCollector`) to this registry."""
        self.registry.register(collector)

    # Typed helpers: the parts call these rather than `.labels(...)` so label values stay bounded.

    def set_version(self, version: str) -> None:
        self.build_info.info({"version": version})

    def observe_turn(self, latencies: Mapping[str, float | None]) -> None:
        """Record one turn's latencies, keyed by stage (`transcript`, `first_token`, ...); None skips."""
        for stage, seconds in latencies.items():
            histogram = self._turn_histograms.get(stage.removesuffix("_s"))
            if histogram is None:
                raise ValidationError(f"unknown turn latency stage {stage!r}")
            if seconds is not None:
                histogram.observe(seconds)

    def observe_engine_request(self, engine: EngineName, timing: RequestTiming) -> None:
        _check(engine, ENGINES, "engine")
        self.engine_requests_total.labels(engine=engine).inc()
        self.engine_queue_wait_seconds.labels(engine=engine).observe(timing.queue_wait_s)
        self.engine_compute_seconds.labels(engine=engine).observe(timing.compute_s)

    def engine_cancelled(self, engine: EngineName) -> None:
        self.engine_cancelled_total.labels(engine=_check(engine, ENGINES, "engine")).inc()

    def engine_failed(self, engine: EngineName) -> None:
        self.engine_failures_total.labels(engine=_check(engine, ENGINES, "engine")).inc()

    def engine_rejected(self, engine: EngineName) -> None:
        self.engine_rejected_total.labels(engine=_check(engine, ENGINES, "engine")).inc()

    def set_engine_queue_depth(self, engine: EngineName, depth: int) -> None:
        self.engine_queue_depth.labels(engine=_check(engine, ENGINES, "engine")).set(depth)

    def call_ended(self, outcome: str, cost_micros: int | None = None) -> None:
        """A call finished: count its outcome and, when the ledger knows it, its cost."""
        self.calls_total.labels(outcome=_check(outcome, CALL_OUTCOMES, "outcome")).inc()
        if cost_micros is not None:
            self.call_cost_dollars.observe(cost_micros / 1_000_000)

    def amd_result(self, result: str) -> None:
        self.amd_results_total.labels(result=_check(result, AMD_RESULTS, "result")).inc()

    def dial_blocked(self, reason: DialBlockReason) -> None:
        self.dial_blocked_total.labels(reason=_check(reason, DIAL_BLOCK_REASONS, "reason")).inc()

    def media_frame_dropped(self, reason: MediaDropReason) -> None:
        self.media_frames_dropped_total.labels(
            reason=_check(reason, MEDIA_DROP_REASONS, "reason")).inc()

    def cost_spent(self, micros: int) -> None:
        """Money spent, from the cost ledger, in integer micro-dollars."""
        self.cost_dollars_total.inc(micros / 1_000_000)

    def socket_opened(self, kind: SocketKind) -> None:
        self.open_sockets.labels(kind=_check(kind, SOCKET_KINDS, "kind")).inc()

    def socket_closed(self, kind: SocketKind) -> None:
        self.open_sockets.labels(kind=_check(kind, SOCKET_KINDS, "kind")).dec()

    def events_dropped(self, count: int = 1) -> None:
        self.control_events_dropped_total.inc(count)

    def outbox_delivery(self, channel: str, result: str, seconds: float) -> None:
        """One delivery attempt: delivered, retry (will be tried again) or dead."""
        _check(channel, OUTBOX_CHANNELS, "channel")
        self.outbox_deliveries_total.labels(
            channel=channel, result=_check(result, OUTBOX_RESULTS, "result")).inc()
        self.outbox_delivery_seconds.labels(channel=channel).observe(seconds)

    def outbox_backlog(self, *, pending: int, dead: int, oldest_s: float) -> None:
        self.outbox_pending.set(pending)
        self.outbox_dead_letters.set(dead)
        self.outbox_oldest_pending_seconds.set(oldest_s)

    def calendar_conflict(self) -> None:
        self.calendar_conflicts_total.inc()

    def sheets_request(self, result: SheetsResult) -> None:
        self.sheets_requests_total.labels(result=_check(result, SHEETS_RESULTS, "result")).inc()

    def circuit_changed(self, service: str, state: str, not_closed: int) -> None:
        """A circuit of `service` went to `state`; `not_closed` of its circuits are open now."""
        _check(service, CIRCUIT_SERVICES, "service")
        self.circuit_transitions_total.labels(
            service=service, state=_check(state, CIRCUIT_STATES, "state")).inc()
        self.circuits_not_closed.labels(service=service).set(not_closed)

    def recording_stopped(self, reason: str) -> None:
        self.recordings_stopped_total.labels(
            reason=_check(reason, RECORDING_STOP_REASONS, "reason")).inc()

    def engine_out_of_memory(self, engine: str, limit: int) -> None:
        """An engine ran out of memory; the box now takes `limit` live calls."""
        self.engine_out_of_memory_total.labels(engine=_check(engine, ENGINES, "engine")).inc()
        self.admission_limit.set(limit)

    def admission_changed(self, limit: int) -> None:
        self.admission_limit.set(limit)

    def inbound_shed(self, reason: str) -> None:
        self.inbound_shed_total.labels(reason=reason).inc()

    def retry_attempted(self, service: str, allowed: bool) -> None:
        self.retries_total.labels(service=_check(service, CIRCUIT_SERVICES, "service"),
                                  result="retried" if allowed else "budget_exhausted").inc()

    # Cost part helpers (budget gauges follow reautod.cost.budgets.BudgetGauges).

    def cost_by_service(self, service: str, micros: int) -> None:
        self.cost_by_service_dollars_total.labels(
            service=_check(service, COST_SERVICES, "service")).inc(micros / 1_000_000)

    def budget_state(self, period: str, used_ratio: float, projected_ratio: float | None) -> None:
        if period not in BUDGET_PERIODS:  # "total" budgets have no period to watch
            return
        self.budget_used_ratio.labels(period=period).set(used_ratio)
        if projected_ratio is not None:
            self.budget_projected_ratio.labels(period=period).set(projected_ratio)

    def budget_alert(self, kind: str) -> None:
        self.budget_alerts_total.labels(kind=_check(kind, BUDGET_ALERT_KINDS, "kind")).inc()

    def set_spending_stopped(self, stopped: bool) -> None:
        self.spending_stopped.set(1 if stopped else 0)

    def cost_reconciled(self, reported_micros: int, difference_micros: int) -> None:
        self.cost_reconciled_dollars_total.inc(reported_micros / 1_000_000)
        self.cost_ledger_error_dollars_total.inc(abs(difference_micros) / 1_000_000)

    def tier_decided(self, tier: str) -> None:
        self.tts_tier_decisions_total.labels(tier=_check(tier, VOICE_TIERS, "tier")).inc()

    def premium_fallback(self, reason: str) -> None:
        self.premium_tts_fallbacks_total.labels(
            reason=_check(reason, PREMIUM_FALLBACK_REASONS, "reason")).inc()

    def elevenlabs_quota(self, remaining_characters: int) -> None:
        self.elevenlabs_quota_remaining_characters.set(remaining_characters)


def sample_names(registry: CollectorRegistry) -> set[str]:
    """Every series name the registry can expose, including `_bucket`/`_count`/`_sum`/`_created`.

    Derived from the families, so a labelled metric or an absent GPU still contributes its names.
    """
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "gauge": ("",),
        "info": ("_info",),
        "unknown": ("",),
    }
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names
