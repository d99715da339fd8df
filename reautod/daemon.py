"""reautod: the composition root. Builds every part, tells systemd how it is going, and drains on
SIGTERM. This is the only module that knows every part; the start-up below reads top to bottom.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reautod import __version__
from reautod.api.activation import listens_at, take_listen_sockets
from reautod.api.admin import admin_router
from reautod.api.app import HttpServer, create_app
from reautod.api.credentials import ApiCredentials, token_methods
from reautod.api.docs import docs_router
from reautod.api.media import media_router
from reautod.api.tls import server_tls
from reautod.call_events import ObserverFanOut
from reautod.call_observer import CallEventPublisher
from reautod.campaigns.dnc import DncList
from reautod.campaigns.store_adapters import StoreDncStorage
from reautod.config import (
    Secrets,
    Settings,
    config_path_from,
    load_secrets,
    load_settings,
)
from reautod.control.results import DaemonState, ReloadResult
from reautod.control.server import ControlServer
from reautod.cost.part import CostPart
from reautod.cost.pricebook import load_price_books
from reautod.cost.twilio_prices import TwilioCallPrices
from reautod.daemon_methods import DaemonMethods
from reautod.dialogue.part import DialoguePart
from reautod.engines.control import engine_methods
from reautod.engines.registry import EngineSet
from reautod.environment import check_environment
from reautod.errors import AlreadyRunningError, ConfigError, ReautodError
from reautod.health import HealthChecks, database_check, http_check, sessions_check
from reautod.integrations.part import IntegrationsPart
from reautod.live_settings import LiveSettings
from reautod.methods import Method
from reautod.observability.events import EventBus
from reautod.observability.gpu import GpuCollector, load_nvml
from reautod.observability.logging import CallbackHandler, replace_level, setup_logging
from reautod.observability.loop_lag import LoopLagMonitor
from reautod.observability.metrics import Metrics
from reautod.observability.metrics_server import MetricsServer, start_metrics_server
from reautod.observability.metrics_summary import metrics_methods
from reautod.outbound.part import OutboundPart
from reautod.outbound.twilio_side import TwilioSide
from reautod.pipeline import route_pipecat_logs
from reautod.pipeline.agent import AgentConversations
from reautod.pipeline.calls import CallManager
from reautod.pipeline.control import call_methods
from reautod.recovery.part import RecoveryPart
from reautod.resilience.part import ResiliencePart
from reautod.sdnotify import Notifier
from reautod.security.keys import KeyRing, load_key_ring
from reautod.security.part import SecurityPart
from reautod.sessions import SessionStore, open_session_store
from reautod.store import Database, WriteBehind, recover_partial_recordings
from reautod.store.abandoned import close_abandoned_calls
from reautod.store.call_audio import StoreCallRecording
from reautod.store.call_observer import StoreCallObserver
from reautod.store.control import store_methods
from reautod.store.repositories import CampaignRepository
from reautod.topics import DaemonStateChanged, LogRecord
from reautod.webrtc.part import WebRTCPart

log = logging.getLogger("reautod")

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2


class Daemon:
    """Owns every long-lived part and task of the running daemon."""

    def __init__(
        self, settings: Settings, secrets: Secrets, config_path: Path | None, *, debug: bool,
        http_socket: socket.socket | None = None,
    ) -> None:
        self.settings = settings
        self.live = LiveSettings(settings)  # what the parts read; reload replaces it
        self.secrets = secrets
        self.config_path = config_path
        self.debug = debug
        self.http_socket = http_socket  # systemd's (reautod.socket), else the port is bound here
        self.notifier = Notifier()
        self.metrics = Metrics()
        self.metrics.set_version(__version__)
        self.bus = EventBus(on_drop=self.metrics.events_dropped)
        self.state: DaemonState = "starting"
        self.started_monotonic = time.monotonic()
        self.started_at = datetime.now(UTC)
        self.stop_requested = asyncio.Event()
        self.state_dir = settings.resolved_state_dir()
        self.socket_path = settings.socket_path()
        self.sessions: SessionStore | None = None
        self.control: ControlServer | None = None
        self.http: HttpServer | None = None
        self.metrics_server: MetricsServer | None = None
        self.loop_lag: LoopLagMonitor | None = None
        self.gpu: GpuCollector | None = None
        self.db: Database | None = None
        self.writer: WriteBehind | None = None
        self.recovery: RecoveryPart | None = None
        self.engines: EngineSet | None = None
        self.calls: CallManager | None = None
        self.call_events: CallEventPublisher | None = None
        self.twilio: TwilioSide | None = None
        self.outbound: OutboundPart | None = None
        self.dialogue: DialoguePart | None = None
        self.integrations: IntegrationsPart | None = None
        self.cost: CostPart | None = None
        self.keys: KeyRing | None = None
        self.security: SecurityPart | None = None
        self.tokens: ApiCredentials | None = None
        self.webrtc: WebRTCPart | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.health_checks = HealthChecks()  # parts add theirs as they start
        self._log_forwarder: logging.Handler | None = None

    # -- start-up ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bring every part up in dependency order; READY=1 only at the very end."""
        # 1. Directories: state (database, recordings, models) and runtime (control socket).
        self.notifier.status("creating directories")
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        self.socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)

        # 2. Claim the control socket first: a second daemon must fail before touching anything.
        self.control = ControlServer(
            self.socket_path,
            self._control_methods(),
            self.bus,
            allowed_uids=self.settings.control.allowed_uids,
            allowed_gids=self.settings.control.allowed_gids,
        )
        await self.control.start()

        # 3. Metrics first, so every later part can count from its first moment.
        self.metrics_server = start_metrics_server(
            self.metrics, self.settings.metrics.host, self.settings.metrics.port
        )
        self.loop_lag = LoopLagMonitor(self.metrics.event_loop_lag_seconds)
        self.loop_lag.start()
        # Circuits and retry budgets of every external service, reported from here on.
        self.resilience = ResiliencePart(self.settings.resilience, self.metrics, self.bus)
        self.health_checks.add("circuits", self.resilience.health)
        self.gpu = GpuCollector(load_nvml())
        self.metrics.register(self.gpu)
        gpu = self.gpu
        self.health_checks.add("gpu", lambda: gpu.health_check(
            required=self.settings.models.device == "cuda"
        ))

        # 4. System of record: open, check the schema is current (or migrate), start the writer.
        self.notifier.status("opening the database")
        self.db = Database(self.settings.effective_database_url(), self.settings.database,
                           resilience=self.resilience.resilience)
        await self.db.open()
        self.health_checks.add("database", database_check(
            self.db, lambda: self.writer.stats() if self.writer else None))
        await self.db.ensure_schema(auto_migrate=self.settings.auto_migrate)
        self.writer = WriteBehind(
            self.db, self.state_dir / "spool", queue_size=self.settings.database.write_queue_size
        )
        await self.writer.start()
        # The master keys (encryption_key credential) seal recordings at rest; a bad credential
        # stops the start-up. Loaded before crash recovery, which must open sealed partial files.
        self.keys = load_key_ring(self.secrets.get("encryption_key"))
        # each recording stores when it goes: the shorter of the two settings that speak of it
        recording_retention = timedelta(days=min(
            self.settings.calls.recording_retention_days, self.settings.retention.recordings_days))
        # recordings a crash left half-written are finalised (or removed when empty) and recorded
        report = await recover_partial_recordings(
            self.state_dir / "recordings", self.keys,
            retention=recording_retention)
        for finalized in report.finalized:
            self.writer.submit(finalized)
        if report.finalized or report.removed:
            log.info(
                "recordings left by a crash: %d finalized, %d removed",
                len(report.finalized),
                len(report.removed),
            )
        # calls a previous run left open (a crash, a refused inbound stream) are closed with
        # their reason, once the writes that run spooled are in (they may end some of them);
        # those with a checkpoint stay open for their resume window (Twilio's action request
        # brings them back on a new stream)
        self.recovery = RecoveryPart(self.live, self.state_dir, self.db)
        if await self.writer.caught_up(timeout=30.0):
            await close_abandoned_calls(self.db, datetime.now(UTC),
                                        keep=await self.recovery.recoverable_ids())
        else:
            log.warning("the previous run's spool is not replayed yet: open calls stay open")

        # 5. Live-session store: in-process by default, Redis when configured.
        self.notifier.status("connecting to the session store")
        self.sessions = open_session_store(self.settings.redis_url,
                                           resilience=self.resilience.resilience)
        self.health_checks.add("redis", sessions_check(self.sessions))

        # 5b. Security: the erasure register (refuses another salt than erasures were made with),
        #     subject requests, the audit log; from here every state-changing control method is
        #     audited with the peer's uid; the daily retention job runs as a task.
        self.security = SecurityPart(
            self.db, self.sessions, state_dir=self.state_dir, keys=self.keys,
            erasure_salt=self.secrets.get("erasure_salt"), retention=self.settings.retention)
        await self.security.start()
        self.control.audit_with(self.security.audit)
        # The admin API's tokens are signed with the jwt_secret credential; without it the API
        # is off (token.create says so). Tokens (by jti) and API keys are in the database.
        self.tokens = ApiCredentials.build(self.db, self.secrets.get("jwt_secret"))
        for method in (*self.security.control_methods(), *token_methods(self.tokens)):
            self.control.register(method)
        self._spawn(self.security.retention_task(), "retention")

        # 6. Models: loaded once, shared by every call. Missing models do not stop the daemon;
        #    health names them and calls are refused until they are installed.
        self.notifier.status("loading models")
        #    With [llm_pool] endpoints the LLM is that pool of servers, one circuit each.
        self.engines = await EngineSet.load(self.settings, observer=self.metrics,
                                            resilience=self.resilience.resilience)
        self.health_checks.update(self.engines.health_checks())
        self.call_events = CallEventPublisher(self.bus, self.metrics, self.sessions)
        # Money: the price book, the ledger (through the writer), budgets rebuilt from it; every
        # call's engine requests and minutes metered, and no dial past a budget's cap.
        self.cost = CostPart(self.settings, self.db, self.writer, self.metrics, self.bus,
                             elevenlabs_api_key=self.secrets.get("elevenlabs_api_key"),
                             breakers=self.resilience.breakers)
        await self.cost.start()
        # Twilio (its client, signatures, the calls in flight) comes before the call manager:
        # the agent's transfer is the manager's handoff. Without Twilio settings it says why.
        self.twilio = TwilioSide(self.live.current, self.secrets, self.db, self.metrics, self.bus,
                                 resilience=self.resilience.resilience)
        if self.twilio.link is not None:  # Twilio's own price of each call, reconciled
            self.cost.reconcile_with(TwilioCallPrices(self.twilio.link.client.rest))
        # The dialer paces by the measured voice-to-voice latency and the engines' queues.
        # An engine out of (GPU) memory lowers the live-call limit, which the call manager and
        # the governor share; GPU memory nearly full holds new dials back.
        engines = self.engines
        live = self.live
        admission = self.resilience.admission_limit(lambda: live.current.calls.max_concurrent)
        load = self.resilience.load_governor(
            lambda: {h.name: h.queue_depth for h in engines.health()},
            gpu_memory=gpu.used_share)
        # Both audio directions of every call go to WAV files, their rows to the writer.
        # A full disk stops a call's recording (an alert), never the call.
        recording = (
            self.resilience.alarmed(StoreCallRecording(
                self.state_dir / "recordings", self.writer,
                retention=recording_retention,
                keys=self.keys,
            ))
            if self.settings.calls.record
            else None
        )
        # Results out (webhooks, confirmations, the results sheet) through the outbox; its
        # worker starts with the HTTP side below. It and the dialer share the DNC list.
        dnc = DncList(StoreDncStorage(self.db))
        self.integrations = IntegrationsPart(
            self.settings, self.secrets, self.db, self.writer, self.metrics, dnc,
            erased=self.security.register, resilience=self.resilience.resilience,
        )
        self.cost.alert_sinks.append(self.integrations.budget_alerts)  # budget.alert webhooks
        # Every call's life goes to the store, the operator (bus, metrics, sessions), the
        # integrations and the cost meters (after the store: they read the call's row back),
        # and to outbound (added once it is built, below); the fan-out guards each, so one
        # failing never hides a call from the others.
        observers = ObserverFanOut(
            StoreCallObserver(self.writer), self.call_events,
            self.integrations.results, *self.cost.observers, load, self.recovery.recorder,
        )
        # What calls say: the campaign's playbook (the qualifying agent), else the one prompt.
        # A playbook's bookings go to the rep's calendar when one is configured, else to the
        # campaign's own slots.
        # Calls reach the LLM through its circuit; while it is open they take the playbook's
        # scripted path (the JSON extraction, by `llm_models.extraction` or the reply model,
        # keeps the engines themselves: it has its own timeout).
        # Every request is fitted to the model's context window by tokens first. Approved lines
        # are synthesized ahead in the local voice, which is every call's voice only while no
        # premium voice is configured (a premium call must not hear them in the other voice).
        guarded_llm = self.resilience.guarded_llm(self.engines.windowed(self.settings))
        self.dialogue = DialoguePart(self.settings, self.state_dir, self.db, self.writer,
                                     self.bus, self.metrics,
                                     self.engines.named_models(self.settings),
                                     calendar=self.integrations.scheduler(),
                                     llm_usage=self.cost.llm_usage, model_down=guarded_llm.down,
                                     tts=self.engines.tts if self.cost.premium is None else None,
                                     resilience=self.resilience.resilience)
        self.engines.llm = guarded_llm
        await self.dialogue.start()
        self.health_checks.add("playbooks", self.dialogue.health)
        conversations = self.dialogue.conversations(
            AgentConversations(lambda: self.live.current.agent))
        guarded = self.resilience.memory_guarded(
            self.cost.metered(self.engines),
            lambda: len(self.calls.live_calls()) if self.calls is not None else 0)
        self.calls = CallManager(guarded, self.live, observers, recording,
                                 conversations=conversations, handoff=self.twilio.transfers,
                                 admission=admission, checkpoints=self.recovery.recorder)
        await self.calls.start()
        # Outbound (the dialer, Twilio's webhooks, opt-outs, recording after the announcement,
        # hanging up the line when the conversation ends) uses the call manager's admission,
        # sessions and greetings, and hears about live calls through the fan-out. An inbound
        # caller the box cannot take hears the busy message, and keeps a slot warm.
        self.outbound = OutboundPart(
            self.live, self.db, self.twilio, self.writer, self.metrics, self.bus, line=self.calls,
            dnc=dnc,
            tts=self.calls.engines.tts,  # voicemails in the agent's voice
            ended_unconnected=self.integrations.results.ended_without_conversation,
            budget=self.cost, erased=self.security.register, load=load,
            inbound_gate=self.resilience.inbound_shedding(lambda: self.calls))
        observers.add(self.outbound.observer)
        # Calls that outlive the daemon: Twilio's stream-ended request resumes them here.
        link = self.twilio.link
        self.recovery.attach(self.calls, link.client if link is not None else None,
                             link.validator if link is not None else None)
        await self.recovery.start()
        # calls from the browser call page and `reautoctl talk`, over WebRTC, on the same path;
        # the page's offers need an admin API credential whenever the API is on
        api_on = self.tokens is not None and self.tokens.authority is not None
        self.webrtc = WebRTCPart(self.settings.webrtc, self.calls, self.bus,
                                 self.tokens if api_on else None, self.security.audit,
                                 CampaignRepository(self.db))
        self.health_checks.add("twilio", self.twilio.health)
        self.health_checks.add("integrations", self.integrations.health)
        self._register_part_methods()

        # 7. HTTP side (webhooks, media WebSocket); bound before READY so Twilio can reach us.
        self.notifier.status("starting HTTP")
        # The media WebSocket checks Twilio's signature whenever Twilio is configured.
        media = media_router(self.calls, self.twilio.media_upgrade_validator())
        # /api/v1 serves the control methods to token holders, audited like the socket; its
        # Swagger UI and ReDoc (/docs, /redoc) come from files in the package
        admin = ([admin_router(self.tokens, self.control.method_table(), self.security.audit),
                  docs_router()]
                 if self.tokens is not None and self.tokens.authority is not None else [])
        routers = [media, *self.outbound.routers(), *self.recovery.routers(),
                   *self.integrations.routers(), *admin, *self.webrtc.routers()]
        app = create_app(routers, health=self.health_checks.report)
        # Under reautod.socket systemd holds the port (also while we restart): use its socket,
        # unless it listens elsewhere than [http] says (then the config wins, and we say so).
        passed = self.http_socket
        if passed is not None and not listens_at(passed, self.settings.http.host,
                                                 self.settings.http.port):
            log.error("systemd passed a socket on %s, but [http] is %s:%d: binding that "
                      "instead (make reautod.socket's ListenStream= match)",
                      passed.getsockname(), self.settings.http.host, self.settings.http.port)
            passed.close()
            passed = None
        self.http = HttpServer(app, self.settings.http.host, self.settings.http.port,
                               tls=server_tls(self.settings.http), sock=passed)
        await self.http.start()
        self.health_checks.add("http", http_check(self.http))
        # The dialer's timers (a tick per running campaign, lease heartbeat) start last, after
        # the outbox's delivery worker.
        await self.integrations.start()
        await self.outbound.start()

        # 8. Background duties: the watchdog is pinged from this loop, so a blocked loop is noticed;
        #    STATUS= follows the number of live calls; WARNING+ log lines go to subscribers.
        interval = self.notifier.watchdog_interval(self.settings.watchdog_interval_s)
        if interval is not None:
            self._spawn(self._watchdog(interval), "watchdog")
        self._spawn(self._status_ticker(), "status")
        self._spawn(self.health_checks.watch(self.bus), "health-watch")
        loop = asyncio.get_running_loop()

        def forward_log(record: Mapping[str, str]) -> None:  # may run on an engine thread
            loop.call_soon_threadsafe(self.bus.publish, "log", LogRecord.model_validate(record))

        self._log_forwarder = CallbackHandler(forward_log)
        logging.getLogger().addHandler(self._log_forwarder)

        self.state = "ready"
        self.notifier.ready(self._status_line())
        self.bus.publish("daemon.state", DaemonStateChanged(state=self.state))
        log.info(
            "reautod %s ready: socket %s, http port %d, database %s, sessions %s",
            __version__,
            self.socket_path,
            self.http.port,
            self.settings.database_backend,
            self.settings.session_backend,
        )

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watchdog(self, interval: float) -> None:
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    async def _status_ticker(self) -> None:
        last = ""
        while True:
            if self.control is not None:
                self.metrics.open_sockets.labels(kind="control").set(self.control.connection_count)
            self.metrics.open_sockets.labels(kind="websocket").set(self.live_call_count())
            line = self._status_line()
            if line != last:
                self.notifier.status(line)
                last = line
            await asyncio.sleep(2.0)

    def live_call_count(self) -> int:
        return len(self.calls.live_calls()) if self.calls is not None else 0

    def _status_line(self) -> str:
        calls = self.live_call_count()
        return f"{self.state}: {calls} call{'' if calls == 1 else 's'} live"

    # -- signals ---------------------------------------------------------------------------------

    def install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload(), "reload"))

    def request_stop(self) -> None:
        if not self.stop_requested.is_set():
            log.info("stop requested")
            self.stop_requested.set()

    async def reload(self) -> ReloadResult:
        """Re-read the config; an invalid one is rejected and the running one kept."""
        self.notifier.reloading()
        self.notifier.status("reloading configuration")
        try:
            settings = load_settings(self.config_path, required=self.config_path is not None)
            secrets = load_secrets(settings)
            for warning in check_environment(settings, secrets):
                log.warning("%s", warning)
        except ConfigError as err:
            detail = "; ".join(f"{p}: {m}" for p, m in err.problems) or err.message
            log.error("reload rejected, keeping the running configuration: %s", detail)
            self.notifier.ready(self._status_line())
            return ReloadResult(reloaded=False, detail=detail)
        # new calls read the holder; restart-only sections keep their running values
        changed = self.live.replace(settings)
        if changed:
            log.warning("reload: %s changed; takes effect after a restart", ", ".join(changed))
        self.settings, self.secrets = self.live.current, secrets
        replace_level(settings.logging.level, debug=self.debug)
        log.info("configuration reloaded")
        self.notifier.ready(self._status_line())
        return ReloadResult(
            reloaded=True,
            detail=f"restart needed for: {', '.join(changed)}" if changed else "",
        )

    # -- shutdown --------------------------------------------------------------------------------

    async def drain_and_stop(self) -> None:
        """Stop taking work, give live work the grace period, then close every part."""
        self.state = "stopping"
        self.notifier.stopping("draining")
        self.bus.publish("daemon.state", DaemonStateChanged(state=self.state))
        log.info("draining (grace %.0fs)", self.settings.shutdown_grace_s)
        if self.outbound is not None:
            await self.outbound.stop_dialing()  # no new calls while live ones drain
        if self.calls is not None:
            await self.calls.drain(self.settings.shutdown_grace_s)
            await self.calls.close()
        if self.webrtc is not None:
            await self.webrtc.close()
        if self._log_forwarder is not None:
            logging.getLogger().removeHandler(self._log_forwarder)
        for task in tuple(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.http is not None:
            await self.http.close()
        if self.outbound is not None:
            await self.outbound.close()
        if self.integrations is not None:
            await self.integrations.close()  # before the writer: ended calls' results go out
        if self.call_events is not None:
            await self.call_events.close()
        if self.dialogue is not None:
            await self.dialogue.close()
        if self.recovery is not None:
            await self.recovery.close()  # the ended calls' checkpoints are gone by now
        if self.cost is not None:
            await self.cost.close()  # the calls' last cost rows, before the writer stops
        if self.engines is not None:
            await self.engines.close()
        if self.writer is not None:
            await self.writer.stop()
        if self.db is not None:
            await self.db.close()
        if self.sessions is not None:
            await self.sessions.close()
        if self.loop_lag is not None:
            await self.loop_lag.stop()
        if self.gpu is not None:
            self.gpu.close()
        if self.metrics_server is not None:
            await asyncio.to_thread(self.metrics_server.close)  # joins its thread
        self.bus.close()
        if self.control is not None:
            await self.control.close()
        log.info("stopped")

    # -- control methods ---------------------------------------------------------------------

    def _control_methods(self) -> list[Method]:
        return [*DaemonMethods(self, self.health_checks).methods(),
                *metrics_methods(self.metrics)]

    def ports(self) -> tuple[int | None, int | None]:
        """The HTTP and metrics ports, once bound (`status`)."""
        return (self.http.port if self.http else None,
                self.metrics_server.port if self.metrics_server else None)

    def _register_part_methods(self) -> None:
        """Methods of parts built after the control socket (it is bound first, see start())."""
        assert self.control is not None and self.engines is not None
        assert self.db is not None and self.writer is not None
        for method in (*engine_methods(self.engines), *store_methods(self.db, self.writer)):
            self.control.register(method)
        if self.calls is not None:
            # call.simulate dials our own media WebSocket, signed when signatures are checked
            sign = self.twilio.sign_media if self.twilio is not None else None
            for method in call_methods(self.calls, self._local_http_url, sign,
                                       client_ssl=self._local_client_ssl):
                self.control.register(method)
        if self.outbound is not None:
            for method in self.outbound.control_methods():
                self.control.register(method)
        if self.dialogue is not None:
            for method in self.dialogue.control_methods():
                self.control.register(method)
        if self.integrations is not None:
            for method in self.integrations.control_methods():
                self.control.register(method)
        if self.cost is not None:
            for method in self.cost.control_methods():
                self.control.register(method)
        for method in self.recovery.control_methods() if self.recovery is not None else ():
            self.control.register(method)
        for method in self.webrtc.control_methods() if self.webrtc is not None else ():
            self.control.register(method)

    def _local_client_ssl(self) -> ssl.SSLContext | None:
        return self.http.loopback_ssl if self.http is not None else None

    def _local_http_url(self) -> str:
        assert self.http is not None
        host = self.http.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"{self.http.scheme}://{host}:{self.http.port}"


async def serve(
    settings: Settings, secrets: Secrets, config_path: Path | None, *, debug: bool,
    http_socket: socket.socket | None = None,
) -> int:
    daemon = Daemon(settings, secrets, config_path, debug=debug, http_socket=http_socket)
    daemon.install_signal_handlers(asyncio.get_running_loop())
    try:
        await daemon.start()
    except AlreadyRunningError as err:
        log.error("%s", err.message)
        return EXIT_FAILURE
    except (ReautodError, OSError) as err:
        log.error("start-up failed: %s", err)
        await daemon.drain_and_stop()
        return EXIT_FAILURE
    await daemon.stop_requested.wait()
    await daemon.drain_and_stop()
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reautod", description="The reautod voice appliance daemon."
    )
    parser.add_argument(
        "--config", help="TOML config file (default: $REAUTOD_CONFIG or /etc/reautod/reautod.toml)"
    )
    parser.add_argument("--state-dir", help="state directory (overrides the config)")
    parser.add_argument(
        "--check-config", action="store_true", help="validate the config and exit (0 ok, 2 invalid)"
    )
    parser.add_argument("--debug", action="store_true", help="log at DEBUG")
    parser.add_argument("--version", action="version", version=f"reautod {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path, required = config_path_from(args.config)
    overrides: dict[str, Any] = {"state_dir": args.state_dir} if args.state_dir else {}
    try:
        settings = load_settings(path, required=required, overrides=overrides)
        secrets = load_secrets(settings)
        load_price_books(settings.cost.price_book)  # prices are configuration too
        server_tls(settings.http)  # the certificate and key load, or --check-config says why
        for warning in check_environment(settings, secrets):
            print(f"reautod: warning: {warning}", file=sys.stderr)
    except ConfigError as err:
        print(f"reautod: {err.message}", file=sys.stderr)
        for field, problem in err.problems:
            print(f"  {field}: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check_config:
        print(f"reautod: configuration OK ({path if path.exists() else 'defaults, no file'})")
        return EXIT_OK
    setup_logging(settings.logging.level, settings.logging.journald, debug=args.debug)
    # pipecat logs through loguru straight to stderr; send it into our handlers instead
    route_pipecat_logs("DEBUG" if args.debug else "WARNING")
    config_path = path if path.exists() else None
    # systemd socket activation (systemd/reautod.socket): the HTTP port's socket is passed in
    passed = take_listen_sockets(os.environ, os.getpid())
    if len(passed) > 1:
        log.warning("systemd passed %d sockets; serving HTTP on the first", len(passed))
    return asyncio.run(serve(settings, secrets, config_path, debug=args.debug,
                             http_socket=passed[0] if passed else None))


if __name__ == "__main__":
    sys.exit(main())
