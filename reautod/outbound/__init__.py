"""Outbound and inbound Twilio calls as the daemon runs them.

`twilio_side` (Twilio's client, signatures, voicemail clips and the calls in flight), the one
placing path (`placing`), call tracking from Twilio's webhooks (`tracker`), the live-call
observer that turns opt-outs into DNC entries and starts recordings (`live`), the hang-up
interface both end calls through (`hangup`), the agent's transfer (`transfer`), the dialer's
timers (`timers`), the control methods (`methods`, `manual_dial`) and `OutboundPart`, which
builds them in dependency order. The calling rules themselves are `reautod.campaigns`.
"""
