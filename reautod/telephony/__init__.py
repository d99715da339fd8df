"""Telephony: Twilio wire formats, audio helpers and the Twilio Media Streams simulator."""
