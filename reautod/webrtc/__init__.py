"""Hearing the agent without Twilio: calls over WebRTC from the browser call page (`/call`) and
from `reautoctl talk`, on the daemon's own call path (CallManager, same engines, agent and
records; transport `webrtc` or `sounddevice`)."""
