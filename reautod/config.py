"""The one settings schema: a TOML file, `REAUTOD_*` environment overrides, secrets from files.

Precedence, highest first: environment (`REAUTOD_HTTP__PORT=8081`), the TOML file, defaults.
Unknown keys anywhere are errors, so a typo never silently falls back to a default. Secrets are
never values in the file: each is read from a file named in `[secrets]`, from the systemd
credential of the same name in `$CREDENTIALS_DIRECTORY`, or from `REAUTOD_SECRET_<NAME>`.
"""

from __future__ import annotations

import contextvars
import ipaddress
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from reautod.cost.settings import CostSettings, ElevenLabsSettings
from reautod.errors import ConfigError
from reautod.integrations.settings import IntegrationsSettings
from reautod.resilience.settings import ResilienceSettings

DEFAULT_CONFIG_PATH = Path("/etc/reautod/reautod.toml")
SECRET_NAMES = (
    "twilio_auth_token", "elevenlabs_api_key", "jwt_secret", "encryption_key", "erasure_salt"
)

_toml_path: contextvars.ContextVar[Path | None] = contextvars.ContextVar("_toml_path", default=None)


class Section(BaseModel):
    """A config table: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ControlSettings(Section):
    socket: Path | None = Field(
        None, description="Control socket path; default: <runtime dir>/control.sock"
    )
    allowed_uids: list[int] = Field(
        default_factory=list, description="Extra uids allowed on the control socket"
    )
    allowed_gids: list[int] = Field(
        default_factory=list, description="Extra gids allowed on the control socket"
    )


class HttpSettings(Section):
    host: str = Field("127.0.0.1", description="Address the HTTP side (webhooks, media WS) binds")
    port: int = Field(8080, ge=0, le=65535, description="HTTP port; 0 picks a free port")
    public_base_url: str | None = Field(
        None, description="https URL Twilio reaches this box at; used for signatures and TwiML"
    )
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate chain: serve https/wss on this port (with tls_key_file); "
        "unset: plain http, for a TLS proxy in front (docs/security.md)"
    )
    tls_key_file: Path | None = Field(
        None, description="PEM private key of tls_cert_file (e.g. a systemd credential)"
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> HttpSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both tls_cert_file and tls_key_file, or neither")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None


class WebRTCSettings(Section):
    enabled: bool = Field(
        False, description="Serve the browser call page at /call: press Call and talk to the "
        "agent over WebRTC (`reautoctl talk` works without it)"
    )
    allowed_networks: list[IPvAnyNetwork] = Field(
        default_factory=lambda: [ipaddress.ip_network("127.0.0.0/8"),
                                 ipaddress.ip_network("::1/128")],
        description="Client addresses the page and its offers are served to (others get 403); "
        "beyond loopback needs the jwt_secret credential, and browsers open the microphone only "
        "on https or localhost",
    )


class MetricsSettings(Section):
    host: str = Field("127.0.0.1", description="Address the Prometheus /metrics endpoint binds")
    port: int = Field(9464, ge=0, le=65535, description="Metrics port; 0 picks a free port")


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level")
    journald: Literal["auto", "on", "off"] = Field(
        "auto", description="Log to journald: auto = when started by systemd"
    )


class DatabaseSettings(Section):
    pool_size: int = Field(10, ge=1, le=200, description="Postgres connection pool size")
    max_overflow: int = Field(5, ge=0, le=200, description="Extra connections above pool_size")
    pool_timeout_s: float = Field(5.0, gt=0, description="Wait for a pooled connection")
    connect_timeout_s: float = Field(5.0, gt=0, description="Connect timeout")
    retry_attempts: int = Field(3, ge=0, le=20, description="Retries of a write on a lost link")
    write_queue_size: int = Field(10_000, ge=100, description="Write-behind queue bound")


class ModelsSettings(Section):
    dir: Path | None = Field(None, description="Models directory; default: <state dir>/models")
    profile: Literal["small", "cpu", "gpu", "test"] = Field(
        "small", description="Which curated model set the engines load (see `reautoctl models`)"
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Inference device")
    stt: str | None = Field(
        None, description="STT model dir (relative to models dir); overrides profile"
    )
    llm: str | None = Field(
        None, description="LLM GGUF file (relative to models dir); overrides profile"
    )
    tts: str | None = Field(
        None, description="Piper voice .onnx (relative to models dir); overrides profile"
    )
    n_gpu_layers: int = Field(-1, ge=-1, description="llama.cpp layers on the GPU: -1 = as "
                              "many as fit in the free memory NVML reports (all when they do); a "
                              "count that does not fit is refused")
    n_ctx: int = Field(4096, ge=256, le=131072, description="llama.cpp context window in tokens")
    n_threads: int | None = Field(
        None, ge=1, description="CPU threads for llama.cpp; default: all cores but one"
    )
    llm_parallel: int = Field(4, ge=1, le=64, description="Agent replies the in-process LLM "
                              "decodes together (llama.cpp sequences in one context, each "
                              "keeping its call's conversation between turns and taking n_ctx "
                              "tokens of KV cache); more wait for a free one")


class EngineSettings(Section):
    queue_size: int = Field(32, ge=1, le=10_000, description="Bounded request queue per engine")
    stt_timeout_s: float = Field(5.0, gt=0, description="STT request timeout")
    llm_timeout_s: float = Field(20.0, gt=0, description="LLM request timeout (whole reply)")
    tts_timeout_s: float = Field(10.0, gt=0, description="TTS request timeout per sentence")
    llm_max_tokens: int = Field(160, ge=1, le=4096, description="Cap on tokens per agent reply")
    llm_temperature: float = Field(0.6, ge=0, le=2, description="Sampling temperature of agent "
                                   "replies; 0 always picks the likeliest word (repeatable)")
    llm_summary_tokens: int = Field(96, ge=16, le=1024, description="When a call outgrows the "
                                    "model's context window, its older turns become a summary "
                                    "of at most this many tokens (the model writes it)")


_ENDPOINT_NAME = r"^[a-z0-9][a-z0-9_-]{0,31}$"


class LlmEndpointSettings(Section):
    """One OpenAI-compatible server (llama.cpp's server, Ollama, vLLM) of the LLM pool."""

    name: str = Field(pattern=_ENDPOINT_NAME, description="The endpoint's name (health, "
                      "metrics and its circuit `llm_pool:<name>` show it)")
    url: str = Field(description="Its OpenAI base URL, e.g. http://10.0.0.5:8000/v1")
    model: str = Field("default", min_length=1, description="The model name sent in requests "
                       "(Ollama and vLLM serve by name; llama.cpp's server takes any)")
    max_concurrent: int = Field(2, ge=1, le=256, description="Requests this endpoint serves at "
                                "once (its parallel slots); more wait for a free slot")
    context_tokens: int = Field(4096, ge=256, le=1_048_576, description="The model's context "
                                "window there, in tokens (the conversation is fitted to it)")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")


class LlmPoolSettings(Section):
    """The LLM pool: with endpoints, calls' replies go to these servers instead of the in-process
    model (docs/architecture.md, "The LLM pool")."""

    endpoints: list[LlmEndpointSettings] = Field(
        default_factory=list, description="OpenAI-compatible servers; empty = the in-process "
        "model serves every call")
    health_interval_s: float = Field(5.0, gt=0, le=600, description="How often each endpoint's "
                                     "/models is checked")
    connect_timeout_s: float = Field(2.0, gt=0, le=60, description="Connecting to an endpoint")
    first_token_timeout_s: float = Field(10.0, gt=0, le=300, description="Waiting for a free "
                                         "slot and the first token, retries included")
    attempts: int = Field(2, ge=1, le=10, description="Endpoints tried for one reply before its "
                          "first token (never retried after it: the caller may have heard it)")

    @model_validator(mode="after")
    def _unique_names(self) -> LlmPoolSettings:
        names = [e.name for e in self.endpoints]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"endpoint names must be unique: {', '.join(twice)}")
        return self


class NamedModelSettings(Section):
    """An in-process language model a task or stage can name."""

    name: str = Field(pattern=_ENDPOINT_NAME, description="The name tasks and stages use")
    path: str = Field(min_length=1, description="Its GGUF file (relative to the models dir)")


class LlmModelsSettings(Section):
    """Language models besides the one that speaks the replies (reautod.engines.switch)."""

    local: list[NamedModelSettings] = Field(
        default_factory=list, description="In-process models, loaded on first use")
    max_loaded: int = Field(1, ge=1, le=16, description="Named in-process models kept loaded at "
                            "once; the least recently used idle one is unloaded past it")
    summary: str | None = Field(None, description="The model that writes a long call's summary "
                                "(a name of `local` or an `[llm_pool]` endpoint's model); "
                                "default: the reply model")
    extraction: str | None = Field(None, description="The model that reads facts out of the "
                                   "caller's words as constrained JSON (the playbooks' "
                                   "`model.extract`), named as `summary`; default: the reply "
                                   "model")

    @model_validator(mode="after")
    def _unique_names(self) -> LlmModelsSettings:
        names = [m.name for m in self.local]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"model names must be unique: {', '.join(twice)}")
        return self


class CallSettings(Section):
    max_concurrent: int = Field(8, ge=1, le=500, description="Live calls this box takes at once")
    reprompt_after_silence_s: float = Field(7.0, gt=0, description="Re-prompt after this silence")
    hangup_after_silence_s: float = Field(20.0, gt=0, description="Hang up after this silence")
    max_duration_s: float = Field(900.0, gt=0, description="Hard cap on call duration")
    min_barge_in_s: float = Field(
        0.35, ge=0, description="Caller speech shorter than this never interrupts the agent"
    )
    backchannels: list[str] = Field(
        default_factory=lambda: ["mhm", "mm", "uh huh", "yeah", "yes", "ok", "okay", "right"],
        description="Utterances that do not interrupt the agent",
    )
    record: bool = Field(
        False,
        description="Record both directions of every call as WAV under state_dir/recordings; "
        "the call announces it and honours objections ([recording_consent])",
    )
    recording_retention_days: int = Field(
        90, ge=1, le=3650, description="Keep each recording this many days (stored per "
        "recording; the shorter of this and retention.recordings_days applies)"
    )
    resume_window_s: float = Field(
        120.0, ge=0, le=3600, description="A call whose media stream died with the daemon (a "
        "crash, kill -9) stays recoverable this long: Twilio's request for the stream's action "
        "URL resumes it from its checkpoint; after it the call is closed as interrupted "
        "(0: never resume)"
    )
    resume_line: str = Field(
        "Sorry, we got cut off. You were telling me: {last_words}",
        description="What a resumed call says first ({last_words}: the caller's last turn)",
    )
    resume_line_no_words: str = Field(
        "Sorry, we got cut off. Where were we?",
        description="What a resumed call says first when the caller had said nothing yet",
    )


class RetentionSettings(Section):
    """`[retention]`: how long each kind of data is kept (days); reautod/security/retention.py."""

    recordings_days: int = Field(
        90, ge=1, le=3650, description="Keep each call recording this many days (stored per "
        "recording when it is made, the shorter of this and calls.recording_retention_days; "
        "also the limit for files no row describes)")
    transcripts_days: int = Field(
        180, ge=1, le=3650, description="Keep what was said (turns, agent transitions)")
    call_metadata_days: int = Field(
        730, ge=1, le=3650, description="Keep calls, their status timeline, scores, dialing "
        "attempts and blocked dials")
    audit_days: int = Field(
        2555, ge=30, le=36500, description="Keep audit log entries (the chain stays verifiable)")
    export_archives_days: int = Field(
        30, ge=1, le=365, description="Keep subject-access export archives on this box")

    @model_validator(mode="after")
    def _nested(self) -> RetentionSettings:
        for part in ("recordings_days", "transcripts_days"):
            if getattr(self, part) > self.call_metadata_days:
                raise ValueError(f"{part} cannot exceed call_metadata_days: removing a call "
                                 "removes its recordings and transcript")
        return self


DEFAULT_ANNOUNCEMENT = (
    "This call is recorded. If you do not want it recorded, just say so and I will stop."
)


class RecordingConsentSettings(Section):
    """`[recording_consent]`: how local recording asks for and honours consent
    (reautod/security/consent.py)."""

    mode: Literal["all_party", "one_party"] = Field(
        "all_party", description="all_party: keep a recording only after the announcement was "
        "heard and not objected to (the safe default everywhere); one_party: the business's "
        "own consent suffices, an objection still discards it")
    announcement: str = Field(DEFAULT_ANNOUNCEMENT, min_length=1, max_length=500,
                              description="Said at the end of a recorded call's opening (again "
                              "at the start of the next reply if the caller cut in before it was "
                              "over); consent counts from when it was heard in full")
    stopped: str = Field("Understood, I have stopped the recording and deleted it.",
                         min_length=1, max_length=500,
                         description="Said once the caller objected and the recording was "
                         "deleted")


class AgentSettings(Section):
    business_name: str = Field(
        "Acme Solar", description="Registered business name the agent states"
    )
    agent_name: str = Field("Alex", description="What the agent calls itself")
    callback_number: str | None = Field(
        None, description="E.164 number that takes DNC requests; the opening speaks it"
    )
    goal: str = Field(
        "find out whether the lead wants a free consultation and book one",
        description="Default campaign goal injected into the system prompt",
    )
    system_prompt: str = Field(
        "You are {agent_name}, a friendly phone agent for {business_name}. You are calling "
        "{lead_name}. Your goal: {goal}. Keep every reply to one or two short spoken sentences. "
        "Never invent facts. If they ask not to be called, apologise and end politely.",
        description="System prompt template; {agent_name} {business_name} {lead_name} {goal}",
    )
    greeting: str = Field(
        "Hi {lead_name}, this is {agent_name}, an automated assistant calling from "
        "{business_name}. {opt_out} {callback} Do you have a minute?",
        description="The opening, first thing said on an outbound call; {opt_out} offers the "
        "opt-out, {callback} gives callback_number (docs/telephony.md, Call opening)",
    )
    inbound_greeting: str = Field(
        "Thanks for calling {business_name}. This is {agent_name}, an automated assistant. "
        "How can I help you?", min_length=1, max_length=500,
        description="The first thing said to a caller who rang the Twilio number (a campaign "
        "without a playbook); the fields of greeting",
    )
    reprompt: str = Field("Are you still there?", description="Said after silence")
    goodbye: str = Field("Thanks for your time. Goodbye!", description="Said before hanging up")
    apology: str = Field(
        "Sorry, I didn't catch that. Could you say it again?",
        description="Said when an engine fails during a turn",
    )


class DialogueSettings(Section):
    """The qualifying agent: where campaigns' playbooks live (reautoctl playbook list)."""

    playbooks_dir: Path | None = Field(
        None, description="Directory of playbook YAML files; default <state_dir>/playbooks, "
        "seeded with the worked examples on first start"
    )


class TwilioSettings(Section):
    account_sid: str | None = Field(None, description="Twilio account SID (AC...)")
    from_number: str | None = Field(None, description="Caller ID in E.164")
    api_base_url: str | None = Field(None, description="Override Twilio's API host (tests)")
    inbound_campaign: str | None = Field(
        None, max_length=200, description="Campaign that answers callers who are not yet a "
        "lead: each becomes a new lead of it; none (or empty): they hear inbound_message")
    inbound_message: str = Field(
        "Thank you for calling. We can't take your call right now. Please try again later. "
        "Goodbye.", min_length=1, max_length=1000,
        description="What a caller no campaign takes hears before the call ends")
    busy_message: str = Field(
        "Thank you for calling. All of our lines are busy right now. Please call again in a few "
        "minutes. Goodbye.", min_length=1, max_length=1000,
        description="What an inbound caller hears when the box is too busy to take the call "
        "(load shedding), before the call ends")
    busy_audio_url: str | None = Field(
        None, max_length=2000, description="An http(s) URL of audio played instead of "
        "busy_message (TwiML <Play>)")


class SecretsSettings(Section):
    """Paths of files holding secrets; unset means `$CREDENTIALS_DIRECTORY/<name>`."""

    twilio_auth_token_file: Path | None = Field(
        None, description="File holding the Twilio auth token (signs and checks webhooks)"
    )
    elevenlabs_api_key_file: Path | None = Field(
        None, description="File holding the ElevenLabs API key (premium TTS tier)"
    )
    jwt_secret_file: Path | None = Field(
        None, description="File holding the HMAC secret that signs admin API tokens"
    )
    encryption_key_file: Path | None = Field(
        None, description="File holding the key that encrypts recordings and transcripts at rest"
    )
    erasure_salt_file: Path | None = Field(
        None, description="File holding the salt (base64, 16+ bytes) of erased numbers' hashes; "
        "default: generated once in <state_dir>/privacy/erasure.salt"
    )


class Settings(BaseSettings):
    """Everything reautod can be told; see reautod.example.toml for a commented instance."""

    model_config = SettingsConfigDict(
        env_prefix="REAUTOD_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    environment: Literal["dev", "staging", "prod"] = Field("dev", description="dev, staging or prod: staging warns about and prod refuses unsafe settings (docs/security.md)")
    state_dir: Path | None = Field(
        None, description="State directory; default $STATE_DIRECTORY or $XDG_STATE_HOME/reautod"
    )
    runtime_dir: Path | None = Field(
        None,
        description="Runtime directory; default $RUNTIME_DIRECTORY or $XDG_RUNTIME_DIR/reautod",
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL (postgresql+psycopg://...); default embedded SQLite"
    )
    redis_url: str | None = Field(
        None, description="Redis URL (redis://...); default in-process session store"
    )
    auto_migrate: bool = Field(
        False, description="Migrate Postgres at start-up instead of refusing when behind"
    )
    shutdown_grace_s: float = Field(
        30.0, ge=0, le=3600, description="On SIGTERM, how long live calls may finish"
    )
    watchdog_interval_s: float | None = Field(
        None, gt=0, description="Override the WATCHDOG=1 period (default: half of WatchdogSec)"
    )

    control: ControlSettings = ControlSettings()
    http: HttpSettings = HttpSettings()
    metrics: MetricsSettings = MetricsSettings()
    webrtc: WebRTCSettings = WebRTCSettings()
    logging: LoggingSettings = LoggingSettings()
    database: DatabaseSettings = DatabaseSettings()
    models: ModelsSettings = ModelsSettings()
    engines: EngineSettings = EngineSettings()
    llm_pool: LlmPoolSettings = LlmPoolSettings()
    llm_models: LlmModelsSettings = LlmModelsSettings()
    calls: CallSettings = CallSettings()
    agent: AgentSettings = AgentSettings()
    dialogue: DialogueSettings = DialogueSettings()
    twilio: TwilioSettings = TwilioSettings()
    cost: CostSettings = CostSettings()
    elevenlabs: ElevenLabsSettings = ElevenLabsSettings()
    secrets: SecretsSettings = SecretsSettings()
    integrations: IntegrationsSettings = IntegrationsSettings()
    retention: RetentionSettings = RetentionSettings()
    recording_consent: RecordingConsentSettings = RecordingConsentSettings()
    resilience: ResilienceSettings = ResilienceSettings()

    def llm_model_names(self) -> frozenset[str]:
        """The named language models: `[llm_models] local` and the pool endpoints' models."""
        return frozenset({m.name for m in self.llm_models.local}
                         | {e.model for e in self.llm_pool.endpoints})

    @model_validator(mode="after")
    def _task_models_known(self) -> Settings:
        for task in ("summary", "extraction"):
            name = getattr(self.llm_models, task)
            if name is not None and name not in self.llm_model_names():
                raise ValueError(f"llm_models.{task} = {name!r} is neither an llm_models.local "
                                 "name nor an llm_pool endpoint's model")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _toml_path.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # database_url and redis_url may carry a password; repr() and str() show it masked.
        for name, value in super().__repr_args__():
            if name in ("database_url", "redis_url") and isinstance(value, str):
                value = _mask_url_password(value)
            yield name, value

    # Derived locations: computed here once so the daemon and reautoctl agree.

    def resolved_state_dir(self, environ: Mapping[str, str] | None = None) -> Path:
        env = os.environ if environ is None else environ
        if self.state_dir is not None:
            return self.state_dir
        if env.get("STATE_DIRECTORY"):
            return Path(env["STATE_DIRECTORY"].split(":")[0])
        base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "reautod"

    def resolved_runtime_dir(self, environ: Mapping[str, str] | None = None) -> Path:
        env = os.environ if environ is None else environ
        if self.runtime_dir is not None:
            return self.runtime_dir
        if env.get("RUNTIME_DIRECTORY"):
            return Path(env["RUNTIME_DIRECTORY"].split(":")[0])
        if env.get("XDG_RUNTIME_DIR"):
            return Path(env["XDG_RUNTIME_DIR"]) / "reautod"
        return Path("/tmp") / f"reautod-{os.getuid()}"

    def socket_path(self, environ: Mapping[str, str] | None = None) -> Path:
        if self.control.socket is not None:
            return self.control.socket
        return self.resolved_runtime_dir(environ) / "control.sock"

    def models_dir(self, environ: Mapping[str, str] | None = None) -> Path:
        return self.models.dir or self.resolved_state_dir(environ) / "models"

    def effective_database_url(self, environ: Mapping[str, str] | None = None) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.resolved_state_dir(environ) / 'reautod.db'}"

    @property
    def database_backend(self) -> str:
        return "postgres" if self.database_url else "sqlite"

    @property
    def session_backend(self) -> str:
        return "redis" if self.redis_url else "memory"


class Secrets:
    """Secret values, resolved once at load; `repr` never shows them."""

    def __init__(self, values: Mapping[str, SecretStr | None]) -> None:
        self._values = dict(values)

    def get(self, name: str) -> str | None:
        value = self._values.get(name)
        return value.get_secret_value() if value is not None else None

    def present(self) -> dict[str, bool]:
        return {name: self._values.get(name) is not None for name in SECRET_NAMES}

    def __repr__(self) -> str:
        return f"Secrets({', '.join(f'{k}=***' for k, v in self._values.items() if v)})"


def config_path_from(
    cli_value: str | Path | None, environ: Mapping[str, str] | None = None
) -> tuple[Path, bool]:
    """The config file to read and whether it was asked for explicitly (then it must exist)."""
    env = os.environ if environ is None else environ
    if cli_value:
        return Path(cli_value), True
    if env.get("REAUTOD_CONFIG"):
        return Path(env["REAUTOD_CONFIG"]), True
    return DEFAULT_CONFIG_PATH, False


def load_settings(
    path: Path | None, *, required: bool = False, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Parse and validate the config file plus environment; raise ConfigError listing every problem."""
    if path is not None and not path.exists():
        if required:
            raise ConfigError(
                f"config file {path} does not exist", [("<file>", f"{path} not found")]
            )
        path = None
    if path is not None:
        try:
            with path.open("rb") as f:
                tomllib.load(f)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML", [("<file>", str(err))]) from err
        except OSError as err:
            raise ConfigError(f"{path}: cannot read", [("<file>", str(err))]) from err
    token = _toml_path.set(path)
    try:
        return Settings(**dict(overrides or {}))
    except PydanticValidationError as err:
        problems = [
            (".".join(str(p) for p in e["loc"]) or "<root>", _problem_text(e)) for e in err.errors()
        ]
        raise ConfigError(f"{len(problems)} problem(s) in the configuration", problems) from None
    except SettingsError as err:
        # A REAUTOD_* variable for a list or table field that is not valid JSON.
        field = re.search(r'field "([^"]+)"', str(err))
        path_ = field.group(1) if field else "<environment>"
        cause = f": {err.__cause__}" if err.__cause__ else ""
        raise ConfigError(
            f"cannot parse the environment override of {path_}",
            [(path_, f"REAUTOD_{path_.upper()}[__*] must be JSON for this field{cause}")],
        ) from None
    finally:
        _toml_path.reset(token)


def _problem_text(error: Mapping[str, Any]) -> str:
    if error.get("type") == "extra_forbidden":
        return "unknown key (check the spelling against reautod.example.toml)"
    return str(error.get("msg", "invalid"))


def load_secrets(settings: Settings, environ: Mapping[str, str] | None = None) -> Secrets:
    """Read each secret from its file, the systemd credential, or REAUTOD_SECRET_<NAME>."""
    env = os.environ if environ is None else environ
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    values: dict[str, SecretStr | None] = {}
    problems: list[tuple[str, str]] = []
    for name in SECRET_NAMES:
        configured: Path | None = getattr(settings.secrets, f"{name}_file")
        candidates = [configured] if configured else []
        if cred_dir:
            candidates.append(Path(cred_dir) / name)
        value: str | None = None
        for candidate in candidates:
            if candidate is None:
                continue
            try:
                value = candidate.read_text(encoding="utf-8").strip()
                break
            except FileNotFoundError:
                if candidate is configured:
                    problems.append((f"secrets.{name}_file", f"{candidate} not found"))
            except OSError as err:
                problems.append(
                    (f"secrets.{name}_file", f"cannot read {candidate}: {err.strerror}")
                )
        if value is None:
            value = env.get(f"REAUTOD_SECRET_{name.upper()}")
        values[name] = SecretStr(value) if value else None
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) reading secrets", problems)
    return Secrets(values)


def redacted(settings: Settings, secrets: Secrets | None = None) -> dict[str, Any]:
    """The effective configuration as JSON-able data, with derived paths and secrets masked."""
    data = settings.model_dump(mode="json")
    for key in ("database_url", "redis_url"):
        if data.get(key):
            data[key] = _mask_url_password(data[key])
    data["state_dir"] = str(settings.resolved_state_dir())
    data["runtime_dir"] = str(settings.resolved_runtime_dir())
    data["control"]["socket"] = str(settings.socket_path())
    data["models"]["dir"] = str(settings.models_dir())
    if secrets is not None:
        data["secrets"]["present"] = {
            k: ("***" if v else None) for k, v in secrets.present().items()
        }
    return data


def _mask_url_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # not an SQLAlchemy URL (e.g. redis://): mask by hand
        if "@" in url and "://" in url:
            scheme, rest = url.split("://", 1)
            creds, host = rest.rsplit("@", 1)
            user = creds.split(":", 1)[0]
            return f"{scheme}://{user}:***@{host}" if ":" in creds else url
        return url
    return parsed.render_as_string(hide_password=True)
