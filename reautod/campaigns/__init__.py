"""Campaign logic: calling windows, lead import, do-not-call, pacing and retries, the dialer.

Modules (each usable alone; only `lead_queue` and `dialer` touch the database):
- `windows`: `evaluate(lead_tz, lead_state, now_utc, campaign_window, recent_call_times)`
  -> `WindowDecision`; rules from `rules/us_states.toml` (`rules.RuleBook`), `holidays`.
- `leads_import`: `import_csv(bytes, default_region=...)` -> `ImportReport` of `LeadRow`s.
- `dnc`: `DncList` over a `DncStorage` Protocol; `detect_opt_out(text)`; `is_opt_out_digit`.
- `pacing`: `ConcurrencyLimiter`, `TokenBucket`, `RetryPolicy` per `Outcome`.
- `amd`: `amd_action(answered_by, MachinePolicy)`, `attempt_outcome(...)`.
- `lead_queue`: `SqlLeadQueue` (SKIP LOCKED claims, fenced leases that expire).
- `dialer`: `Dialer.tick / heartbeat / call_answered / call_ended` over Protocols
  `LeadDirectory`, `CallPlacer`, `DialLog`.
"""
