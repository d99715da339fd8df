"""Telephony: Twilio wire formats and signatures, TwiML, the call state machine, audio helpers
(`audio`) and the Twilio Media Streams simulator (`simulator`)."""
