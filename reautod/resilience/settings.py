"""The `[resilience]` settings table: one circuit-breaker and retry policy per external service.

    [resilience.redis]
    failures = 3        # consecutive transient failures that open the circuit
    recovery_s = 10     # how long it stays open before one half-open probe
    retries = 1         # retries of a transient failure (never of a permanent one)

The retry budget is shared by the whole daemon per service: retries may add at most
`budget_ratio` of the requests made (plus `budget_min_per_s`), so when a service is down the
retries stop long before the breaker opens, and an outage never multiplies the load on it.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field

# The services with a circuit; metrics use these names as the `service` label.
SERVICES: Final = ("twilio", "elevenlabs", "llm", "llm_pool", "webhooks", "caldav", "smtp", "sheets",
                   "redis", "database")


class Section(BaseModel):
    """A config table: unknown keys are errors (config.Section's rules)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ServicePolicy(Section):
    """Circuit and retries of one external service."""

    failures: int = Field(5, ge=1, le=1000, description="Consecutive transient failures that "
                          "open the circuit")
    recovery_s: float = Field(30.0, gt=0, le=3600, description="How long an open circuit refuses "
                              "calls before one half-open probe")
    retries: int = Field(2, ge=0, le=10, description="Retries of a transient failure (a permanent "
                         "one is never retried)")
    backoff_base_s: float = Field(0.2, gt=0, le=60, description="First retry delay (doubles, "
                                  "with jitter)")
    backoff_max_s: float = Field(2.0, gt=0, le=600, description="Longest retry delay")
    budget_ratio: float = Field(0.2, ge=0, le=1, description="Retries may add at most this "
                                "share of the requests made")
    budget_min_per_s: float = Field(0.5, ge=0, le=100, description="Retries allowed per second "
                                    "whatever the request rate (a quiet service still retries)")


class ResilienceSettings(Section):
    """Per-service policies; ElevenLabs keeps its `[elevenlabs] breaker_*` settings."""

    llm_slow_s: float = Field(3.0, gt=0, le=60, description="A first LLM token later than this "
                              "counts as a failure of the llm circuit (slow is as bad as down)")
    slo_voice_to_voice_s: float = Field(1.5, gt=0, le=30, description="Voice-to-voice p90 the "
                                        "dialer paces for: over it no new dials, near it (80 %) "
                                        "one a tick")
    slo_window_s: float = Field(120.0, gt=0, le=3600, description="How far back the p90 looks")
    slo_min_turns: int = Field(10, ge=1, le=10000, description="Fewer recent turns than this: "
                               "the p90 is not used")
    max_engine_queue: int = Field(4, ge=1, le=1000, description="An engine queue this deep holds "
                                  "new dials back")
    max_gpu_memory: float = Field(0.92, gt=0, le=1, description="GPU memory used (share of the "
                                  "fullest device) over which no new dials are placed")
    oom_recover_s: float = Field(300.0, gt=0, le=86400, description="After an engine ran out of "
                                 "memory the box takes one call fewer than it held; the limit "
                                 "rises by one call per this many seconds without another")
    inbound_reserve_s: float = Field(60.0, ge=0, le=3600, description="After an inbound call was "
                                     "turned away (busy), the dialer keeps one call slot free "
                                     "this long for callers")
    twilio: ServicePolicy = ServicePolicy(failures=5, recovery_s=30.0, retries=2)
    llm: ServicePolicy = ServicePolicy(failures=3, recovery_s=15.0, retries=0)
    # one circuit per LLM pool endpoint (`llm_pool:<name>`); its retries are [llm_pool] attempts
    llm_pool: ServicePolicy = ServicePolicy(failures=2, recovery_s=10.0, retries=0)
    webhooks: ServicePolicy = ServicePolicy(failures=5, recovery_s=60.0, retries=0)
    caldav: ServicePolicy = ServicePolicy(failures=5, recovery_s=30.0, retries=1)
    smtp: ServicePolicy = ServicePolicy(failures=5, recovery_s=60.0, retries=0)
    sheets: ServicePolicy = ServicePolicy(failures=5, recovery_s=60.0, retries=3,
                                          backoff_base_s=0.5, backoff_max_s=8.0)
    redis: ServicePolicy = ServicePolicy(failures=3, recovery_s=10.0, retries=1,
                                         backoff_base_s=0.05, backoff_max_s=0.2)
    # its retries are [database] retry_attempts; SQLite has no circuit (a local file)
    database: ServicePolicy = ServicePolicy(failures=3, recovery_s=10.0, retries=3,
                                            backoff_base_s=0.05, backoff_max_s=1.0)

    def policy(self, service: str) -> ServicePolicy:
        if service not in SERVICES or service == "elevenlabs":
            raise KeyError(f"no resilience policy for {service!r}")
        policy: ServicePolicy = getattr(self, service)
        return policy
