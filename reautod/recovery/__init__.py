"""Calls that survive the daemon: per-call checkpoints, resuming a call on a new media stream
after a crash (Twilio's `<Connect action>` request), and recovering calls by hand."""
